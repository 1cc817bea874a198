import pytest
import torch

from effbench.methods.optimizers.adamw import reference, torch_foreach
from tests.methods.optimizers.trajectory import assert_same_trajectory

HYPER = {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


def test_one_step_known_answer():
    """p = 1, g = 0.5: m_hat = 0.5, v_hat = 0.25, so p1 = 1 * (1 - lr*wd) - lr * 0.5 / (0.5 + eps)."""
    p = torch.ones(3, dtype=torch.float64)
    p.grad = torch.full((3,), 0.5, dtype=torch.float64)
    opt = reference([p], **HYPER)
    opt.step()
    expected = 1.0 * (1 - 0.1 * 0.01) - 0.1 * 0.5 / (0.5 + 1e-8)
    assert p.tolist() == pytest.approx([expected] * 3, abs=1e-15)


def test_matches_torch_adamw_over_many_steps():
    gen = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (13,), (3, 3, 3)]
    ours = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
    theirs = [p.clone() for p in ours]
    opt_a, opt_b = reference(ours, **HYPER), torch_foreach(theirs, **HYPER)
    for _ in range(20):
        grads = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
        for p, q, g in zip(ours, theirs, grads, strict=False):
            p.grad, q.grad = g, g.clone()
        opt_a.step()
        opt_b.step()
    for p, q in zip(ours, theirs, strict=False):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triton_step_matches_reference_fp32(seed):
    """Through Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1), small tensors, 20 steps."""
    from effbench.methods.optimizers.adamw import triton

    hyper = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
    assert_same_trajectory(lambda ps: reference(ps, **hyper), lambda ps: triton(ps, **hyper), [(37, 5), (11,)], seed)
