import pytest
import torch

from effbench.methods.samplers.wta_crs import SampledLinear, winner_take_all_rows


def test_every_row_kept_exactly_when_the_budget_covers_them():
    idx, scales = winner_take_all_rows(torch.rand(5), 5, torch.Generator())
    assert sorted(idx.tolist()) == [0, 1, 2, 3, 4] and torch.all(scales == 1)


def test_dominant_rows_are_winners_kept_exactly():
    # two rows carry all the norm: both are winners, nothing is left to sample
    norms = torch.tensor([0.0, 3.0, 0.0, 0.0, 1.0, 0.0])
    idx, scales = winner_take_all_rows(norms, 3, torch.Generator().manual_seed(0))
    assert sorted(idx.tolist()) == [1, 4] and torch.all(scales == 1)


def test_winner_count_minimises_the_leftover_per_draw():
    # p = (0.6, 0.3, 0.05, 0.05), k = 3: (1 - P_c) / (k - c) = 1/3, 0.2, 0.1 -> c = 2 winners, 1 draw
    norms = torch.tensor([6.0, 3.0, 0.5, 0.5])
    idx, scales = winner_take_all_rows(norms, 3, torch.Generator().manual_seed(0))
    assert idx[:2].tolist() == [0, 1] and torch.all(scales[:2] == 1)
    assert idx[2].item() in (2, 3)
    assert scales[2].item() == pytest.approx(0.1 / (1 * 0.05))  # (1 - P_c) / (s p_j)
    # p = (0.5, 0.2, 0.1, 0.1, 0.1), k = 3: 1/3, 0.25, 0.3 -> one winner, two draws
    idx, scales = winner_take_all_rows(torch.tensor([5.0, 2.0, 1.0, 1.0, 1.0]), 3, torch.Generator())
    assert idx[0].item() == 0 and scales[0] == 1 and 0 not in idx[1:].tolist()


def test_estimate_is_unbiased():
    gen = torch.Generator().manual_seed(0)
    norms = torch.rand(40, generator=gen) + 0.05
    values = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    total = torch.zeros(3, dtype=torch.float64)
    draws = 20_000
    for _ in range(draws):
        idx, scales = winner_take_all_rows(norms, 8, gen)
        total += (scales[:, None] * values[idx]).sum(0)
    # the single-draw standard deviation is below 5 here: 20k draws put the mean within ~0.1
    torch.testing.assert_close(total / draws, values.sum(0), atol=0.15, rtol=0)


def _layers(seed):
    gen = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(6, 4, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(4, 6, generator=gen))
    x = torch.randn(3, 7, 6, generator=gen)
    return linear, SampledLinear(linear, 0.3, torch.Generator().manual_seed(seed)), x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_output_and_input_gradient_exact_weight_gradient_unbiased(seed):
    linear, sampled, x = _layers(seed)
    grad_out = torch.randn(3, 7, 4, generator=torch.Generator().manual_seed(seed + 10))
    xe = x.clone().requires_grad_()
    exact_out = linear(xe)
    exact_dx, exact_dw = torch.autograd.grad(exact_out, [xe, linear.weight], grad_out)
    mean_dw = torch.zeros_like(exact_dw)
    draws = 3000
    for _ in range(draws):
        xs = x.clone().requires_grad_()
        out = sampled(xs)
        dx, dw = torch.autograd.grad(out, [xs, sampled.weight], grad_out)
        mean_dw += dw / draws
    torch.testing.assert_close(out, exact_out)
    torch.testing.assert_close(dx, exact_dx)
    assert not torch.allclose(dw, exact_dw)  # one draw is an estimate (6 of 21 rows kept)...
    assert (mean_dw - exact_dw).norm() / exact_dw.norm() < 0.05  # ...whose mean is the exact gradient


def test_backward_keeps_only_the_sampled_rows():
    linear, sampled, x = _layers(0)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.shape) or t, lambda t: t):
        sampled(x.requires_grad_())
    assert torch.Size([6, 6]) in saved  # k = int(0.3 * 21) = 6 rows of 6 features
    assert torch.Size([3, 7, 6]) not in saved and torch.Size([21, 6]) not in saved


def test_exact_without_sampling_or_autograd():
    linear, sampled, x = _layers(1)
    sampled.sampling = False
    xs = x.clone().requires_grad_()
    (dw,) = torch.autograd.grad(sampled(xs).sum(), [sampled.weight])
    (exact,) = torch.autograd.grad(linear(x).sum(), [linear.weight])
    torch.testing.assert_close(dw, exact)
    with torch.no_grad():
        torch.testing.assert_close(SampledLinear(linear, 0.3, torch.Generator())(x), linear(x))
