import torch

from effbench.data import digits
from effbench.methods.samplers._pruning import kept_mask
from effbench.methods.samplers.el2n import el2n, method, reference
from effbench.models import MLP
from effbench.plugs import CandidatePool


def test_el2n_is_the_error_vector_norm():
    logits = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    scores = el2n(logits, torch.tensor([0, 1]))
    torch.testing.assert_close(scores, torch.tensor([0.5**0.5, 2**0.5], dtype=torch.float64))


def test_keep_the_highest_scores():
    mask = kept_mask(torch.tensor([0.1, 0.9, 0.5, 0.7]), 0.5)
    assert mask.tolist() == [False, True, False, True]
    assert kept_mask(torch.tensor([0.1, 0.9, 0.5]), 0.5).sum() == 2  # ceil


def test_pool_selection_draws_only_kept_examples(monkeypatch):
    monkeypatch.setitem(method.extras, "score_steps", 10)
    data = digits()
    model = MLP(data.n_features, 16, data.n_classes, 0)
    memory = {}
    idx = torch.arange(200)
    pool = CandidatePool(data.x_train[idx], data.y_train[idx], model, indices=idx, data=data, memory=memory)
    chosen, _ = reference(pool, 32, torch.Generator().manual_seed(0))
    kept = memory["kept"]
    n = data.x_train.shape[0]
    assert kept.sum() == -int(-0.5 * n // 1)
    assert kept[idx[chosen]].all() and len(set(chosen.tolist())) == len(chosen) <= 32
    assert pool.scored == method.extras["score_runs"] * n
    # the model being trained is untouched by the scoring runs
    assert torch.equal(model.layers[0].weight, MLP(data.n_features, 16, data.n_classes, 0).layers[0].weight)


def test_regression_data_is_skipped_with_a_reason():
    import pytest

    from effbench.registry import Skipped

    pool = CandidatePool(torch.zeros(4, 2), torch.zeros(4, 1), torch.nn.Linear(2, 1), kind="regress",
                         indices=torch.arange(4), memory={})
    with pytest.raises(Skipped, match="class labels"):
        reference(pool, 2, torch.Generator())
