"""Two optimizers fed identical gradients must follow the same trajectory."""

import torch


def assert_same_trajectory(make_a, make_b, shapes, seed: int, steps: int = 20, tol: float = 1e-5,
                           init_scale: float = 1.0, dtype: torch.dtype = torch.float32) -> None:
    """Relative divergence of b's parameters from a's, against a's total update, after ``steps``.

    ``init_scale`` 0.02 starts from weights of the step task's (and GPT-style) magnitude: with unit
    weights, fp32 rounding of the weights alone is ~1e-7 of |p|, which is 1e-5 of a 20-step update
    of lr 2.5e-3 even between two algebraically identical rules.
    """
    gen = torch.Generator().manual_seed(seed)
    ours = [(torch.randn(s, generator=gen, dtype=dtype) * init_scale) for s in shapes]
    theirs = [p.clone() for p in ours]
    start = [p.clone() for p in ours]
    a, b = make_a(ours), make_b(theirs)
    for _ in range(steps):
        for p, q in zip(ours, theirs, strict=True):
            p.grad = torch.randn(p.shape, generator=gen, dtype=dtype)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    for p, q, p0 in zip(ours, theirs, start, strict=True):
        assert ((p - q).norm() / (p - p0).norm()).item() < tol
