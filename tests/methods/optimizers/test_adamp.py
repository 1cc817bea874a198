import pytest
import torch

from effbench.methods.optimizers.adamp import foreach, pytorch_optimizer, reference, triton
from tests.methods.optimizers.trajectory import assert_same_trajectory

# eps = 0 keeps the hand derivations exact: at step 1, m_hat = g and v_hat = g^2, so lr * d = lr * sign(g)
BY_HAND = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 0.0, "weight_decay": 0.1, "delta": 0.1, "wd_ratio": 0.1,
           "nesterov": False}
HYPER = {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "delta": 0.1, "wd_ratio": 0.1,
         "nesterov": False}


def one_step(p, g, **changes):
    p, g = torch.tensor(p, dtype=torch.float64), torch.tensor(g, dtype=torch.float64)
    p.grad = g
    reference([p], **{**BY_HAND, **changes}).step()
    return p


def test_one_step_channel_projection_fires():
    """p = [[1, 2], [1, 1]], g = [[2, -1], [1, -1]]: each g row is orthogonal to its p row, so the channel
    cosines are 0 < 0.1 / sqrt(2) and the channel view fires (before the layer view, which would also).
    d = sign(g) = [[1, -1], [1, -1]]; radial parts <p_i, d_i> / |p_i|^2 = -1/5 and 0, so the projected update
    is [[1, -1] + [1, 2]/5, [1, -1]] = [[1.2, -0.6], [1, -1]]. Decay 1 - lr wd wd_ratio = 0.999:
    p1 = 0.999 p - 0.1 [[1.2, -0.6], [1, -1]] = [[0.879, 2.058], [0.899, 1.099]]. (The layer view would have
    removed p <p, d> / |p|^2 = p / 7 from both rows instead.)"""
    p = one_step([[1.0, 2.0], [1.0, 1.0]], [[2.0, -1.0], [1.0, -1.0]])
    assert p.flatten().tolist() == pytest.approx([0.879, 2.058, 0.899, 1.099], abs=1e-12)


def test_one_step_layer_projection_fires():
    """p = [[1, 2], [3, 1]], g = [[1, 1], [-0.5, -1.5]]: row cosines 3/sqrt(10) and 3/5 are far above 0.1/sqrt(2),
    but <g, p> = 3 - 3 = 0 overall, so the layer view fires (0 < 0.1 / sqrt(4)). d = sign(g) = [[1, 1], [-1, -1]],
    <p, d> = -1, |p|^2 = 15: the update is d + p / 15, decay 0.999, so p1 = p (0.999 - 0.1 / 15) - 0.1 d."""
    p0 = torch.tensor([[1.0, 2.0], [3.0, 1.0]], dtype=torch.float64)
    p = one_step(p0.tolist(), [[1.0, 1.0], [-0.5, -1.5]])
    expected = p0 * (0.999 - 0.1 / 15) - 0.1 * torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(p, expected, rtol=0, atol=1e-12)


def test_one_step_no_projection():
    """g = p = [[1, 2], [1, 1]]: cosines are 1, nothing fires: full decay 1 - lr wd = 0.99 and p1 = 0.99 p - 0.1.
    A vector is never projected: same rule, p1 = 0.99 * 1 - 0.1 sign(g)."""
    p = one_step([[1.0, 2.0], [1.0, 1.0]], [[1.0, 2.0], [1.0, 1.0]])
    assert p.flatten().tolist() == pytest.approx([0.89, 1.88, 0.89, 0.89], abs=1e-12)
    v = one_step([1.0, 1.0], [0.5, -3.0])
    assert v.tolist() == pytest.approx([0.89, 1.09], abs=1e-12)


def test_one_step_nesterov():
    """Nesterov numerator b1 m + (1 - b1) g = 0.19 g at step 1, over bias correction 0.1: lr * 1.9 sign(g)."""
    v = one_step([1.0, 1.0], [0.5, -3.0], nesterov=True)
    assert v.tolist() == pytest.approx([0.99 - 0.19, 0.99 + 0.19], abs=1e-12)


def test_matches_pytorch_optimizer_over_20_steps_fp32():
    pytest.importorskip("pytorch_optimizer")
    assert_same_trajectory(lambda ps: reference(ps, **HYPER), lambda ps: pytorch_optimizer(ps, **HYPER),
                           [(29, 11), (13,), (3, 3, 3)], 3)


@pytest.mark.parametrize("nesterov", [False, True])
def test_foreach_matches_reference_over_20_steps_fp32(nesterov):
    hyper = {**HYPER, "nesterov": nesterov}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: foreach(ps, **hyper),
                           [(29, 11), (13,), (3, 3, 3)], 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triton_matches_reference_over_20_steps_fp32(seed):
    """Through Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1); the layer view fires on some steps;
    (5, 1100) spans two column tiles."""
    hyper = {**HYPER, "nesterov": seed == 2}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: triton(ps, **hyper),
                           [(37, 5), (11,), (5, 1100)], seed)


@pytest.mark.parametrize("other", [foreach, triton, pytorch_optimizer], ids=["foreach", "triton", "pytorch_optimizer"])
def test_channel_projection_trajectory_fp32(other):
    """Gradients orthogonal to every weight row: the channel view fires on every step (random ones rarely do)."""
    if other is pytorch_optimizer:
        pytest.importorskip("pytorch_optimizer")
    gen = torch.Generator().manual_seed(5)
    ours = [torch.randn(9, 6, generator=gen)]
    theirs, start = [ours[0].clone()], ours[0].clone()
    a, b = reference(ours, **HYPER), other(theirs, **HYPER)
    for _ in range(10):
        p = ours[0]
        g = torch.randn(p.shape, generator=gen)
        g -= p * (g * p).sum(1, keepdim=True) / (p * p).sum(1, keepdim=True)
        p.grad, theirs[0].grad = g, g.clone()
        a.step()
        b.step()
    update = ours[0] - start
    assert ((ours[0] - theirs[0]).norm() / update.norm()).item() < 1e-5
    # radial parts removed: every row's norm grew by second order only
    assert (ours[0].norm(dim=1) - start.norm(dim=1)).abs().max() < 0.05 * update.norm(dim=1).min()
