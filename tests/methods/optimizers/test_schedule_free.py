import pytest
import torch

from effbench.methods.optimizers.schedule_free import foreach, reference, schedulefree
from tests.methods.optimizers.trajectory import assert_same_trajectory

HYPER = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 0.0, "weight_decay": 0.0, "warmup_steps": 0, "r": 0.0,
         "weight_lr_power": 2.0}


def test_two_steps_by_hand():
    """p0 = 1, g = 0.5 then 0.25, eps = 0. Step 1: c = 1, d = 0.5, z = 1 - 0.1 = 0.9, x = z = 0.9, y = 0.9.
    Step 2: c = 1/2, v = 0.999 0.001 0.25 + 0.001 0.0625, d = sqrt(v / (1 - 0.999^2)),
    z = 0.9 - 0.1 * 0.25 / d, x = (0.9 + z) / 2, y = 0.1 z + 0.9 x."""
    p = torch.ones(1, dtype=torch.float64)
    opt = reference([p], **HYPER)
    p.grad = torch.full((1,), 0.5, dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(0.9)
    p.grad = torch.full((1,), 0.25, dtype=torch.float64)
    opt.step()
    v = 0.999 * 0.001 * 0.25 + 0.001 * 0.0625
    z = 0.9 - 0.1 * 0.25 / (v / (1 - 0.999**2)) ** 0.5
    x = (0.9 + z) / 2
    assert p.item() == pytest.approx(0.1 * z + 0.9 * x, abs=1e-14)
    opt.eval()
    assert p.item() == pytest.approx(x, abs=1e-14)  # evaluation sees the average
    opt.train()
    assert p.item() == pytest.approx(0.1 * z + 0.9 * x, abs=1e-14)


def test_step_in_eval_mode_is_refused():
    p = torch.ones(2)
    p.grad = torch.ones(2)
    opt = reference([p], **HYPER)
    opt.eval()
    with pytest.raises(RuntimeError, match="train"):
        opt.step()


@pytest.mark.parametrize("other", [foreach, schedulefree], ids=["foreach", "schedulefree"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_over_20_steps_fp32(other, seed):
    if other is schedulefree:
        pytest.importorskip("schedulefree")
    """The two-buffer form rewrites the recursion (y from y and z, not from x): identical algebra (float64,
    1e-10) and fp32 rounding only (weights of the step task's magnitude, 1e-5)."""
    hyper = {**HYPER, "lr": 2.5e-3, "eps": 1e-8, "weight_decay": 0.01, "warmup_steps": 5}
    a, b = (lambda ps: reference(ps, **hyper)), (lambda ps: other(ps, **hyper))
    assert_same_trajectory(a, b, [(23, 7), (9,)], seed, tol=1e-10, dtype=torch.float64)
    assert_same_trajectory(a, b, [(23, 7), (9,)], seed, init_scale=0.02)


@pytest.mark.parametrize("other", [foreach, schedulefree], ids=["foreach", "schedulefree"])
def test_eval_weights_match(other):
    if other is schedulefree:
        pytest.importorskip("schedulefree")
    hyper = {**HYPER, "lr": 1e-2, "eps": 1e-8}
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(13, generator=gen), None
    b = a.clone()
    opt_a, opt_b = reference([a], **hyper), other([b], **hyper)
    for _ in range(10):
        a.grad = torch.randn(13, generator=gen)
        b.grad = a.grad.clone()
        opt_a.step()
        opt_b.step()
    opt_a.eval()
    opt_b.eval()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
