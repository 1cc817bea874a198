import math

import pytest
import torch
import torch.nn.functional as F

from effbench.methods.losses.siglip import chunked, reference, triton

FAST = {
    "chunked": lambda *x: chunked(*x, budget_elements=5 * x[0].shape[0]),
    "triton": lambda *x: triton(*x, block_n=16, block_v=16, block_d=16),
    "triton_autotuned": triton,  # no blocks: the autotuned kernels (the interpreter keeps the first config)
}


def test_known_answer_orthonormal_pairs():
    """a = t = I: diagonal logits T + beta, off-diagonal beta, so
    loss = softplus(-(T + beta)) + (b - 1) softplus(beta)."""
    b, temp, beta = 4, 10.0, -10.0
    eye = torch.eye(b, dtype=torch.float64)
    log_temp, bias = torch.tensor(math.log(temp), dtype=torch.float64), torch.tensor(beta, dtype=torch.float64)
    expected = F.softplus(torch.tensor(-(temp + beta))) + (b - 1) * F.softplus(torch.tensor(beta))
    for fn in (reference, chunked):
        assert fn(eye, eye, log_temp, bias).item() == pytest.approx(expected.item())


@pytest.mark.parametrize("impl", sorted(FAST))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_impls_match_reference(impl, seed):
    gen = torch.Generator().manual_seed(seed)
    b, d = 37, 19
    a = torch.nn.functional.normalize(torch.randn(b, d, generator=gen), dim=-1)
    t = torch.nn.functional.normalize(a + 0.5 * torch.randn(b, d, generator=gen), dim=-1)
    inputs = (a, t, torch.tensor(math.log(10.0)) + 0.1 * seed, torch.tensor(-10.0) + seed)
    outs = []
    for fn in (reference, FAST[impl]):
        leaves = [x.clone().requires_grad_() for x in inputs]
        loss = fn(*leaves)
        outs.append((loss, *torch.autograd.grad(loss, leaves)))
    for ref, got in zip(*outs, strict=True):
        assert (got - ref).norm() / ref.norm().clamp_min(1e-30) < 1e-4
