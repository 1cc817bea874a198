import math

import pytest
import torch

from effbench.methods.optimizers import muon
from effbench.methods.optimizers.muon import NS_COEFFICIENTS, compiled, lr_scale, newton_schulz, reference, torch_muon
from tests.methods.optimizers.trajectory import assert_same_trajectory

SHAPES = [(31, 9), (9, 31), (17,), (16, 16)]  # tall, wide, a vector (AdamW), square
HYPER = {"lr": 0.02, "weight_decay": 0.1}


def quintic(x: float, steps: int = 5) -> float:
    """What NS5 does to one singular value of the normalised input."""
    a, b, c = NS_COEFFICIENTS
    for _ in range(steps):
        x = a * x + b * x**3 + c * x**5
    return x


def orthogonal(n: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_newton_schulz_acts_on_singular_values():
    """U = Q1 diag(sigma) Q2^T (6 x 4, tall: the transposed path): NS5 keeps Q1, Q2 and maps each
    sigma_i / ||sigma|| through the quintic 5 times, into the band [0.68, 1.21] for inputs in [0.002, 1]."""
    sigma = torch.tensor([1.0, 0.5, 0.2, 0.05], dtype=torch.float64)
    q1, q2 = orthogonal(6, 0)[:, :4], orthogonal(4, 1)
    out = newton_schulz(q1 @ torch.diag(sigma) @ q2.T)
    mapped = torch.tensor([quintic(s) for s in (sigma / sigma.norm()).tolist()], dtype=torch.float64)
    torch.testing.assert_close(out, q1 @ torch.diag(mapped) @ q2.T, rtol=0, atol=1e-12)
    singular = torch.linalg.svdvals(out)
    assert ((singular > 0.68) & (singular < 1.21)).all(), singular


def test_one_step_by_hand():
    """Zero momentum, g = 2Q with Q (3 x 2) orthonormal columns: B = (1 - mu) g, U = (1 - mu)(1 + mu) g;
    normalised, U = Q / sqrt(2) (two unit singular values), so O = f(1/sqrt 2) Q with f(0.707) = 0.7-ish
    (O ~ Q). p <- p (1 - lr wd) - lr sqrt(3/2) O. The vector's first AdamW step is lr g / (|g| + eps)."""
    mu, lr, wd = 0.95, 0.1, 0.5
    q = orthogonal(3, 2)[:, :2]
    p, v = torch.ones(3, 2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    p.grad, v.grad = 2 * q, torch.tensor([0.5, -2.0], dtype=torch.float64)
    opt = reference([p, v], lr=lr, momentum=mu, weight_decay=wd, adamw_eps=0.0)
    opt.step()
    f = quintic(1 / math.sqrt(2))
    assert 0.68 < f < 1.21
    torch.testing.assert_close(p, (1 - lr * wd) - lr * math.sqrt(3 / 2) * f * q, rtol=0, atol=1e-12)
    torch.testing.assert_close(opt.buffers[0], (1 - mu) * 2 * q, rtol=0, atol=1e-15)
    assert v.tolist() == pytest.approx([1 - lr, 1 + lr], abs=1e-15)


def test_lr_scale():
    assert lr_scale(torch.Size((12, 4)), "original") == pytest.approx(math.sqrt(3))
    assert lr_scale(torch.Size((4, 12)), None) == 1.0
    assert lr_scale(torch.Size((4, 12)), "match_rms_adamw") == pytest.approx(0.2 * math.sqrt(12))


def _ns_fp32(grad, ns_coefficients, ns_steps, eps):
    return newton_schulz(grad, tuple(ns_coefficients), ns_steps, eps)


@pytest.mark.parametrize("adjust", [None, "match_rms_adamw"])
def test_matches_torch_muon_rule_over_20_steps_fp32(adjust, monkeypatch):
    """Everything torch.optim.Muon does around the orthogonalisation (EMA and Nesterov momentum, transposes,
    decay, lr scale) and its AdamW on the vector, at 1e-5, with its Newton-Schulz swapped for ours in fp32."""
    monkeypatch.setattr(torch.optim._muon, "_zeropower_via_newtonschulz", _ns_fp32)
    hyper = {**HYPER, "adjust_lr_fn": adjust}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: torch_muon(ps, **hyper), SHAPES, 0)


@pytest.mark.parametrize("peer", ["torch", "pytorch_optimizer"])
def test_matches_peers_own_bfloat16_newton_schulz_over_20_steps(peer):
    """Unpatched, both peers orthogonalise in bfloat16 (8 mantissa bits) whatever the parameter dtype, so the
    honest tolerance is bfloat16's: 2e-2 (measured 6e-3). Our fp32 reference is itself ~1e-5 from float64
    after 20 steps: NS5's slope at 0 is 3.4445^5 ~ 500, which amplifies rounding in small singular values."""
    if peer == "pytorch_optimizer":
        pytest.importorskip("pytorch_optimizer")
    other = torch_muon if peer == "torch" else muon.pytorch_optimizer
    u = torch.randn(9, 31, generator=torch.Generator().manual_seed(0))
    if peer == "torch":
        assert torch.optim._muon._zeropower_via_newtonschulz(u, NS_COEFFICIENTS, 5, 1e-7).dtype == torch.bfloat16
    assert_same_trajectory(lambda ps: reference(ps, **HYPER), lambda ps: other(ps, **HYPER), SHAPES, 1, tol=2e-2)


def test_matches_pytorch_optimizer_rule_over_20_steps_fp32(monkeypatch):
    """pytorch_optimizer.Muon's rule (use_muon groups, adamw_lr = lr) at 1e-5 with our fp32 Newton-Schulz."""
    pytest.importorskip("pytorch_optimizer")
    import pytorch_optimizer.optimizer.muon.base as base

    def ns(matrix, num_steps, weights):
        (coefficients,) = weights
        if matrix.ndim == 3:  # same-shape matrices stacked (already wide)
            return torch.stack([newton_schulz(m, coefficients, num_steps) for m in matrix.unbind()])
        return newton_schulz(matrix, coefficients, num_steps)

    monkeypatch.setattr(base, "zero_power_via_newton_schulz_5", ns)
    for adjust in (None, "match_rms_adamw"):
        hyper = {**HYPER, "adjust_lr_fn": adjust}
        assert_same_trajectory(lambda ps, h=hyper: reference(ps, **h),
                               lambda ps, h=hyper: muon.pytorch_optimizer(ps, **h), SHAPES + [(9, 31)], 2)


def test_compile_matches_reference_over_20_steps_fp32():
    assert_same_trajectory(lambda ps: reference(ps, **HYPER), lambda ps: compiled(ps, **HYPER), SHAPES, 3)
