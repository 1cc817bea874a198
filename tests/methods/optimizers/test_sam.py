import pytest
import torch

from effbench.methods.optimizers.sam import foreach, pytorch_optimizer, reference

HYPER = {"lr": 0.1, "rho": 0.05, "momentum": 0.9, "weight_decay": 0.0}


def test_one_step_by_hand():
    """f(w) = w . w / 2 (gradient w) at w = (3, 4): ||g|| = 5, e = 0.05 g / 5 = (0.03, 0.04),
    g' = w + e = (3.03, 4.04); the first SGD-momentum step moves w by -lr g'."""
    w = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    opt = reference([w], **HYPER)

    def closure():
        opt.zero_grad()
        loss = 0.5 * w.square().sum()
        loss.backward()
        return loss

    closure()
    opt.step(closure)
    assert w.tolist() == pytest.approx([3.0 - 0.1 * 3.03, 4.0 - 0.1 * 4.04], abs=1e-12)


def test_step_without_closure_is_refused():
    w = torch.ones(2, requires_grad=True)
    w.grad = torch.ones(2)
    with pytest.raises(ValueError, match="closure"):
        reference([w], **HYPER).step()


def _trajectory(make, seed: int, steps: int = 20) -> list[torch.Tensor]:
    """SAM on a fixed convex-ish function of two tensors, gradients from autograd at every call."""
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(7, 5, generator=gen), torch.randn(11, generator=gen)
    target = torch.randn(7, 5, generator=gen)
    params = [a.requires_grad_(), b.requires_grad_()]
    opt = make(params)

    def closure():
        opt.zero_grad()
        loss = ((params[0] - target) ** 4).sum() + torch.cos(params[1]).sum()
        loss.backward()
        return loss

    for _ in range(steps):
        closure()
        opt.step(closure)
    return [p.detach() for p in params]


@pytest.mark.parametrize("other", [foreach, pytorch_optimizer], ids=["foreach", "pytorch_optimizer"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_over_20_steps_fp32(other, seed):
    if other is pytorch_optimizer:
        pytest.importorskip("pytorch_optimizer")
    hyper = {"lr": 0.01, "rho": 0.05, "momentum": 0.9, "weight_decay": 1e-3}
    ours = _trajectory(lambda ps: reference(ps, **hyper), seed)
    theirs = _trajectory(lambda ps: other(ps, **hyper), seed)
    start = _trajectory(lambda ps: reference(ps, **{**hyper, "lr": 0.0}), seed)
    for p, q, p0 in zip(ours, theirs, start, strict=True):
        assert ((p - q).norm() / (p - p0).norm()).item() < 1e-5
