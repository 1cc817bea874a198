import math

import pytest
import torch

from effbench.methods.samplers.loss_reweighting import loss_weights, reference


def _softmax_times_n(f: list[float], r: float) -> torch.Tensor:
    e = [math.exp(v / r) for v in f]
    return torch.tensor([len(f) * v / sum(e) for v in e], dtype=torch.float64)


@pytest.mark.parametrize(("strategy", "shape"), [
    ("linupper", [0.0, 0.5, 1.0, 1.0]),   # x = -1, -0.5, 0.5, 1 -> min(x + 1, 1)
    ("quadratic", [0.0, 0.75, 0.75, 0.0]),  # 1 - x^2
    ("extremes", [1.0, 0.5, 0.5, 1.0]),   # |x|
])
def test_weights_in_closed_form(strategy, shape):
    losses = torch.tensor([1.0, 2.0, 4.0, 5.0])  # min 1, max 5: x = (2 l - 6) / 4
    w = loss_weights(losses, strategy, temperature=0.4)
    torch.testing.assert_close(w, _softmax_times_n(shape, 0.4))
    assert w.mean().item() == pytest.approx(1.0)


def test_linupper_downweights_the_easiest_example_only():
    w = loss_weights(torch.tensor([0.1, 3.0, 3.5, 4.0]), "linupper", 0.4)
    assert w[0] < w[1] and w[2] == w[3]


def test_equal_losses_give_equal_weights():
    torch.testing.assert_close(loss_weights(torch.full((5,), 2.0), "linupper", 0.4), torch.ones(5, dtype=torch.float64))


def test_token_losses_are_reduced_to_sequence_means():
    from effbench.plugs import CandidatePool
    pool = CandidatePool(torch.zeros(8, 2), torch.zeros(8, dtype=torch.long), torch.nn.Linear(2, 2), step=1)
    chosen, weights = reference(pool, 3, torch.Generator().manual_seed(0))
    assert len(chosen) == 3 and pool.scored == 0
    token = torch.tensor([[1.0, 3.0, 99.0], [2.0, 2.0, 2.0], [6.0, 4.0, 5.0]])
    valid = torch.tensor([[True, True, False], [True, True, True], [True, True, True]])
    torch.testing.assert_close(weights(token, valid), loss_weights(torch.tensor([2.0, 2.0, 5.0]), "linupper", 0.4))
