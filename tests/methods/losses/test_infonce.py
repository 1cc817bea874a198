import math

import pytest
import torch

from effbench.methods.losses.infonce import reference, tiled, triton

FAST = {
    "tiled": lambda a, t, s: tiled(a, t, s, budget_elements=5 * a.shape[0]),  # several row blocks
    "triton": lambda a, t, s: triton(a, t, s, block_n=16, block_v=16, block_d=16),
    "triton_autotuned": triton,  # no blocks: the autotuned kernels (the interpreter keeps the first config)
}


def test_known_answer_orthonormal_pairs():
    """a = t = I (b = d): S = s I, so each row and column gives log(e^s + b - 1) - s."""
    b, s = 5, 3.0
    eye = torch.eye(b, dtype=torch.float64)
    expected = math.log(math.exp(s) + b - 1) - s
    assert reference(eye, eye, s).item() == pytest.approx(expected)
    assert tiled(eye, eye, s, budget_elements=2 * b).item() == pytest.approx(expected)


@pytest.mark.parametrize("impl", sorted(FAST))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_impls_match_reference(impl, seed):
    gen = torch.Generator().manual_seed(seed)
    b, d = 37, 19
    a = torch.nn.functional.normalize(torch.randn(b, d, generator=gen), dim=-1)
    t = torch.nn.functional.normalize(a + 0.5 * torch.randn(b, d, generator=gen), dim=-1)
    outs = []
    for fn in (reference, FAST[impl]):
        al, tl = a.clone().requires_grad_(), t.clone().requires_grad_()
        loss = fn(al, tl, 14.3)
        outs.append((loss, *torch.autograd.grad(loss, [al, tl])))
    for ref, got in zip(*outs, strict=True):
        assert (got - ref).norm() / ref.norm() < 1e-4
