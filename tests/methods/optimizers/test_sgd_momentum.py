import pytest
import torch

from effbench.methods.optimizers.sgd_momentum import reference, torch_foreach

HYPER = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}


def test_two_steps_by_hand():
    p = torch.ones(2, dtype=torch.float64)
    opt = reference([p], **HYPER)
    p.grad = torch.full((2,), 0.5, dtype=torch.float64)
    opt.step()  # buf = 0.5
    assert p.tolist() == pytest.approx([0.95, 0.95])
    p.grad = torch.full((2,), 1.0, dtype=torch.float64)
    opt.step()  # buf = 0.9 * 0.5 + 1 = 1.45
    assert p.tolist() == pytest.approx([0.95 - 0.145, 0.95 - 0.145])


def test_matches_torch_sgd_over_20_steps_fp32():
    gen = torch.Generator().manual_seed(0)
    shapes = [(33, 7), (5,)]
    ours = [torch.randn(s, generator=gen) for s in shapes]
    theirs = [p.clone() for p in ours]
    a = reference(ours, lr=0.01, momentum=0.9, weight_decay=1e-4)
    b = torch_foreach(theirs, lr=0.01, momentum=0.9, weight_decay=1e-4)
    start = [p.clone() for p in ours]
    for _ in range(20):
        for p, q in zip(ours, theirs, strict=True):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    for p, q, p0 in zip(ours, theirs, start, strict=True):
        assert ((p - q).norm() / (q - p0).norm()).item() < 1e-5
