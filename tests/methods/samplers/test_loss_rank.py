import math

import pytest
import torch

from effbench.methods.samplers.loss_rank import rank_probabilities, reference
from effbench.plugs import CandidatePool


def test_probabilities_decay_exponentially_with_rank():
    losses = torch.tensor([0.1, 5.0, 2.0, 0.5])  # ranks: 3, 0, 1, 2
    probs = rank_probabilities(losses, pressure=100.0)
    assert probs.sum().item() == pytest.approx(1.0)
    n = 4
    expected = torch.tensor([math.exp(-math.log(100) * r / n) for r in (3, 0, 1, 2)], dtype=torch.float64)
    torch.testing.assert_close(probs, expected / expected.sum())
    # consecutive ranks differ by the constant factor s^(1/n)
    assert (probs[1] / probs[2]).item() == pytest.approx(100 ** (1 / n))


def test_selection_prefers_high_loss_examples():
    model = torch.nn.Linear(2, 2)
    x = torch.randn(200, 2)
    y = torch.randint(0, 2, (200,))
    pool = CandidatePool(x, y, model)
    counts = torch.zeros(200)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        idx, _ = reference(pool, 20, gen)
        assert len(set(idx.tolist())) == 20
        counts[idx] += 1
    losses = pool.losses()
    top, bottom = losses.argsort(descending=True)[:20], losses.argsort()[:20]
    assert counts[top].mean() > 5 * counts[bottom].mean()
    assert pool.scored == 200  # scored once, cached
