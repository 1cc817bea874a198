import math

import pytest
import torch

from effbench.methods.losses.linear_cross_entropy import chunked, reference


def test_known_answer_zero_weights_give_log_vocab():
    """With w = 0 all logits are 0: loss = log V exactly, dx = 0, dw[v] = mean_i x_i (1/V - [y_i = v])."""
    n, d, v = 5, 3, 7
    x = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(v, d, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 6])
    for fn in (reference, chunked):
        loss = fn(x, w, y)
        dx, dw = torch.autograd.grad(loss, [x, w])
        assert loss.item() == pytest.approx(math.log(v), abs=1e-12)
        assert torch.count_nonzero(dx) == 0
        onehot = torch.nn.functional.one_hot(y, v).double()
        expected = (1.0 / v - onehot).T @ x.detach() / n
        torch.testing.assert_close(dw, expected)


@pytest.mark.parametrize("block", [1, 3, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_matches_reference_with_odd_blocks_and_ignored_rows(block, seed):
    gen = torch.Generator().manual_seed(seed)
    n, d, v = 37, 19, 101
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    w = torch.randn(v, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, v, (n,), generator=gen)
    y[::5] = -100
    outs = []
    for fn, kwargs in ((reference, {}), (chunked, {"budget_elements": block * v})):
        xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
        loss = fn(xl, wl, y, **kwargs)
        outs.append((loss, *torch.autograd.grad(loss, [xl, wl])))
    for a, b in zip(*outs, strict=False):
        torch.testing.assert_close(a, b)


def test_all_ignored_gives_nan_like_pytorch():
    x, w = torch.randn(4, 3), torch.randn(5, 3)
    y = torch.full((4,), -100)
    assert math.isnan(reference(x, w, y).item()) and math.isnan(chunked(x, w, y).item())


def test_chunked_scales_with_upstream_gradient():
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(9, 4, dtype=torch.float64)
    y = torch.randint(0, 9, (6,))
    (g1,) = torch.autograd.grad(chunked(x, w, y), [x])
    (g3,) = torch.autograd.grad(3.0 * chunked(x, w, y), [x])
    torch.testing.assert_close(g3, 3.0 * g1)
