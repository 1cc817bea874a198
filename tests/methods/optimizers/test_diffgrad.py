import math

import pytest
import torch

from effbench.methods.optimizers.diffgrad import foreach, pytorch_optimizer, reference, triton
from tests.methods.optimizers.trajectory import assert_same_trajectory

HYPER = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_one_then_two_steps_by_hand():
    """Step 1, g = 0.5, g_prev = 0: m = 0.05, v = 2.5e-4, xi = sigmoid(0.5), step size lr sqrt(0.001) / 0.1,
    so the update is lr xi (0.05 / 0.1) / (sqrt(2.5e-4 / 0.001) + eps') = lr xi (eps' = eps / sqrt(0.001)).

    Step 2, g = -1.5 written into the *same* grad tensor (as an in-place zero_grad + backward does: an
    aliased g_prev, diffGrad v1's bug, would give |g_prev - g| = 0): xi = sigmoid(|0.5 + 1.5|) = sigmoid(2),
    m = 0.9 * 0.05 - 0.15 = -0.105, v = 0.999 * 2.5e-4 + 0.001 * 2.25 = 2.49975e-3, and the update is
    lr sqrt(1 - 0.999^2) / (1 - 0.9^2) * xi m / (sqrt(v) + eps)."""
    p = torch.ones(2, dtype=torch.float64)
    p.grad = torch.full((2,), 0.5, dtype=torch.float64)
    opt = reference([p], **HYPER)
    opt.step()
    eps1 = 1e-8 / math.sqrt(0.001)
    p1 = 1 - 0.1 * sigmoid(0.5) * 0.5 / (0.5 + eps1)
    assert p.tolist() == pytest.approx([p1] * 2, rel=1e-14)
    assert opt.g_prev[0].tolist() == [0.5, 0.5]

    p.grad.fill_(-1.5)
    opt.step()
    m, v = 0.9 * 0.05 - 0.1 * 1.5, 0.999 * 2.5e-4 + 0.001 * 2.25
    p2 = p1 - 0.1 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2) * sigmoid(2.0) * m / (math.sqrt(v) + 1e-8)
    assert p.tolist() == pytest.approx([p2] * 2, rel=1e-14)
    assert opt.m[0].tolist() == pytest.approx([m] * 2, rel=1e-14)
    assert opt.v[0].tolist() == pytest.approx([v] * 2, rel=1e-14)
    assert opt.g_prev[0].tolist() == [-1.5, -1.5]


def test_coupled_weight_decay_enters_gradient_and_g_prev():
    """wd = 0.5, p = 2, g = 0: the rule sees g = wd p = 1, so one step is p - lr sigmoid(1) (as above) and
    g_prev = 1; p.grad itself is not modified."""
    p = torch.full((3,), 2.0, dtype=torch.float64)
    p.grad = torch.zeros(3, dtype=torch.float64)
    opt = reference([p], **{**HYPER, "weight_decay": 0.5})
    opt.step()
    assert p.tolist() == pytest.approx([2 - 0.1 * sigmoid(1.0) / (1 + 1e-8 / math.sqrt(0.001))] * 3, rel=1e-14)
    assert opt.g_prev[0].tolist() == [1.0] * 3
    assert p.grad.tolist() == [0.0] * 3


@pytest.mark.parametrize("wd", [0.0, 0.01])
@pytest.mark.parametrize("other", [foreach, pytorch_optimizer], ids=["foreach", "pytorch_optimizer"])
def test_matches_over_20_steps_fp32(other, wd):
    if other is pytorch_optimizer:
        pytest.importorskip("pytorch_optimizer")
    hyper = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": wd}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: other(ps, **hyper), [(31, 9), (17,)], 1)


def test_plain_pytorch_optimizer_differs_only_by_its_sqrt_floor():
    """One step, g = (0.5, 1e-6), wd = 0: v = 1e-3 g^2, m = 0.1 g, xi = sigmoid(|g|). Plain po.DiffGrad divides
    by sqrt(v + 1e-15) + eps, ours by sqrt(v) + eps: equal at g = 0.5 (v = 2.5e-4), but at g = 1e-6 (v = 1e-15)
    its step is lr sqrt(1e-3) / 0.1 xi 1e-7 / (sqrt(2e-15) + 1e-8), ~25% below ours."""
    po = pytest.importorskip("pytorch_optimizer")
    g = torch.tensor([0.5, 1e-6], dtype=torch.float64)
    ours, theirs = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    ours.grad, theirs.grad = g.clone(), g.clone()
    reference([ours], **HYPER).step()
    po.DiffGrad([theirs], weight_decouple=False, **HYPER).step()
    scale = 0.1 * math.sqrt(1e-3) / 0.1 * sigmoid(1e-6) * 1e-7
    assert theirs[0].item() == pytest.approx(ours[0].item(), rel=1e-12)
    assert ours[1].item() == pytest.approx(-scale / (math.sqrt(1e-15) + 1e-8), rel=1e-12)
    assert theirs[1].item() == pytest.approx(-scale / (math.sqrt(2e-15) + 1e-8), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triton_step_matches_reference_fp32(seed):
    """Through Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1), small tensors, 20 steps."""
    pytest.importorskip("triton")
    hyper = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: triton(ps, **hyper), [(37, 5), (11,)], seed)
