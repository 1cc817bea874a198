import pytest
import torch

from effbench.methods.samplers.selective_backprop import keep_probabilities, method, reference
from effbench.plugs import CandidatePool


def test_keep_probability_is_the_loss_percentile_to_the_beta():
    history = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    losses = torch.tensor([0.5, 2.5, 10.0], dtype=torch.float64)
    # fractions strictly below: 0, 2/4, 4/4
    torch.testing.assert_close(keep_probabilities(losses, history, 2.0),
                               torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64))


def test_history_grows_to_its_cap_and_selection_keeps_the_biggest_losers():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4)
    memory = {}
    gen = torch.Generator().manual_seed(1)
    for step in range(12):
        x, y = torch.randn(100, 3), torch.randint(0, 4, (100,))
        pool = CandidatePool(x, y, model, memory=memory)
        idx, weights = reference(pool, 32, gen)
        assert weights is None and 1 <= len(idx) <= 32 and len(set(idx.tolist())) == len(idx)
        losses = pool.losses()
        if step > 3:  # kept examples have higher losses than the pool on average
            assert losses[idx].mean() > losses.mean()
        assert len(memory["losses"]) == min(100 * (step + 1), method.extras["history"])


def test_lowest_loss_in_its_own_history_is_never_kept():
    model = torch.nn.Linear(1, 2)
    x, y = torch.zeros(5, 1), torch.zeros(5, dtype=torch.long)  # identical candidates: equal losses
    pool = CandidatePool(x, y, model, memory={})
    idx, _ = reference(pool, 5, torch.Generator().manual_seed(0))
    # nothing lies strictly below an equal loss: P(keep) = 0 for all, so the fallback trains one
    assert idx.tolist() == [0]


@pytest.mark.parametrize("seed", [0, 1])
def test_seeded_selection_repeats(seed):
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    picks = [reference(CandidatePool(x, y, model, memory={}), 16, torch.Generator().manual_seed(seed))[0]
             for _ in range(2)]
    assert torch.equal(*picks)
