import math

import pytest
import torch

from effbench.methods.optimizers.exadam import foreach, log_step_size, pytorch_optimizer, reference, triton
from tests.methods.optimizers.trajectory import assert_same_trajectory

HYPER = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


def test_one_step_by_hand():
    """p = 1, g = 0.5, t = 1: p <- 1 - lr wd = 0.999; m = 0.05, v = 2.5e-4;
    d1 = 1 + 0.999 v / (v + eps) ~ 1.999, d2 = 1 + 0.9 m^2 / (m^2 + eps) ~ 1.9;
    m~ + g~ = (0.05 + 0.5) d1 / 0.1, v~ = 0.25 d2, a_1 = lr ln(sqrt(2) sqrt(2)) = lr ln 2;
    p1 = 0.999 - lr ln 2 * 5.5 d1 / (sqrt(0.25 d2) + eps) ~ 0.999 - 1.106."""
    p = torch.ones(3, dtype=torch.float64)
    p.grad = torch.full((3,), 0.5, dtype=torch.float64)
    opt = reference([p], **HYPER)
    opt.step()
    m, v, eps = 0.05, 2.5e-4, 1e-8
    d1, d2 = 1 + 0.999 * v / (v + eps), 1 + 0.9 * m * m / (m * m + eps)
    expected = 0.999 - 0.1 * math.log(2) * 5.5 * d1 / (math.sqrt(0.25 * d2) + eps)
    assert p.tolist() == pytest.approx([expected] * 3, rel=1e-14)
    assert expected == pytest.approx(0.999 - 1.1057, abs=1e-4)


def test_step_size_grows_like_log_t():
    """a_t / lr = ln(sqrt(2) sqrt(t + 1)) = ln(2 (t + 1)) / 2: ln 2 at t = 1, ln(6) / 2 at t = 2."""
    assert log_step_size(1.0, 1) == pytest.approx(math.log(2))
    assert log_step_size(1.0, 2) == pytest.approx(0.5 * math.log(6))
    assert log_step_size(1.0, 99) == pytest.approx(0.5 * math.log(200))


@pytest.mark.parametrize("other", [foreach, pytorch_optimizer], ids=["foreach", "pytorch_optimizer"])
def test_matches_over_20_steps_fp32(other):
    if other is pytorch_optimizer:
        pytest.importorskip("pytorch_optimizer")
    hyper = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: other(ps, **hyper), [(31, 9), (17,)], 1)


def test_plain_pytorch_optimizer_differs_only_by_the_log_step_size():
    """po.EXAdam (no log growth, commit 5ad536f7's rule) with wd = 0: each step's update is ours times
    lr / a_t, and nothing else differs (checked over 5 steps, feeding both the same gradients)."""
    po = pytest.importorskip("pytorch_optimizer")
    hyper = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    gen = torch.Generator().manual_seed(4)
    ours = torch.randn(23, generator=gen, dtype=torch.float64)
    theirs = ours.clone()
    a, b = reference([ours], **hyper), po.EXAdam([theirs], **hyper)
    for t in range(1, 6):
        before = ours.clone()
        ours.grad = torch.randn(23, generator=gen, dtype=torch.float64)
        theirs.grad = ours.grad.clone()
        a.step()
        b.step()
        ratio = (theirs - before) / (ours - before)
        torch.testing.assert_close(ratio, torch.full_like(ratio, 1 / math.log(math.sqrt(2 * (t + 1)))),
                                   rtol=1e-12, atol=0)
        theirs.copy_(ours)  # keep both on one trajectory; their m, v already agree


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triton_step_matches_reference_fp32(seed):
    """Through Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1), small tensors, 20 steps."""
    pytest.importorskip("triton")
    hyper = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: triton(ps, **hyper), [(37, 5), (11,)], seed)
