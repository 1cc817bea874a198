import pytest
import torch

from effbench.data import stdlib_bytes, stdlib_mixed_pool
from effbench.methods.samplers.color_filter import loss_reduction, reference
from effbench.plugs import CandidatePool
from effbench.registry import Skipped
from effbench.workloads import build_model


def test_score_is_the_loss_the_downstream_data_removes():
    prior = torch.tensor([3.0, 2.0, 5.0])
    conditional = torch.tensor([1.0, 2.5, 4.0])
    torch.testing.assert_close(loss_reduction(prior, conditional), torch.tensor([2.0, -0.5, 1.0], dtype=torch.float64))


def _in_distribution(data) -> torch.Tensor:
    base = stdlib_bytes(seq_len=64)
    corpus = {bytes(w.tolist()) for w in torch.cat([base.x_train, base.y_train[:, -1:]], dim=1).to(torch.uint8)}
    rows = torch.cat([data.x_train, data.y_train[:, -1:]], dim=1).to(torch.uint8)
    return torch.tensor([bytes(r.tolist()) in corpus for r in rows])


def _select(data, memory):
    idx = torch.arange(64)
    model = build_model("lm_nano", data, 0)
    pool = CandidatePool(data.x_train[idx], data.y_train[idx], model, kind="lm", indices=idx, data=data,
                         memory=memory)
    chosen, weights = reference(pool, 16, torch.Generator().manual_seed(0))
    return idx[chosen], weights, pool


def test_keeps_source_code_over_shuffled_bytes_and_repeats():
    data = stdlib_mixed_pool()
    in_distribution = _in_distribution(data)
    memory = {}
    chosen, weights, pool = _select(data, memory)
    kept = memory["kept"]
    n = data.x_train.shape[0]
    assert weights is None and kept.sum() == n // 2 and kept[chosen].all() and len(chosen) == 16
    assert pool.scored == 2 * n  # both models score the training split once
    # a prior fine-tuned on source code gains most on source code (0.99 with the defaults; chance: 0.5)
    assert in_distribution[kept].float().mean() > 0.95
    # the auxiliary runs are seeded: shortened runs, twice, keep the same rows
    from effbench.methods.samplers.color_filter import method

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(method.extras, "prior_steps", 10)
        patch.setitem(method.extras, "conditional_steps", 5)
        first, again = {}, {}
        _select(data, first)
        _select(data, again)
    assert torch.equal(again["kept"], first["kept"])


def test_classification_data_is_skipped():
    pool = CandidatePool(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.nn.Linear(2, 2))
    with pytest.raises(Skipped, match="downstream sample"):
        reference(pool, 2, torch.Generator())
