import math

import pytest
import torch

from effbench.data import stdlib_bytes, stdlib_mixed_pool
from effbench.methods.samplers.dsir import hashed_ngram_counts, log_importance_weights, reference, resample
from effbench.plugs import CandidatePool
from effbench.registry import Skipped


def test_counts_hold_every_unigram_and_bigram_once():
    tokens = torch.tensor([[1, 2, 1, 2]])
    counts = hashed_ngram_counts(tokens, buckets=1 << 20, vocab=4)
    assert counts.sum() == 4 + 3  # 4 unigrams, 3 bigrams
    # unigrams 1, 2 twice each; bigrams (1,2) twice and (2,1) once: with many buckets, no collisions
    assert sorted(counts[counts > 0].tolist()) == [1.0, 2.0, 2.0, 2.0]


def test_log_weights_in_closed_form():
    raw = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    target = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    # smoothed: p_raw = (3/6, 3/6); p_target = (4/6, 2/6)
    delta = torch.tensor([math.log(4 / 3), math.log(2 / 3)], dtype=torch.float64)
    torch.testing.assert_close(log_importance_weights(raw, target), raw @ delta)


def test_resampling_favours_heavy_rows_and_repeats_with_its_seed():
    log_w = torch.tensor([0.0] * 50 + [5.0] * 50, dtype=torch.float64)
    hits = sum(resample(log_w, 20, torch.Generator().manual_seed(s))[50:].sum().item() for s in range(20))
    assert hits > 0.95 * 20 * 20
    a, b = (resample(log_w, 20, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a, b) and a.sum() == 20


def test_selection_keeps_the_in_distribution_half():
    data = stdlib_mixed_pool()
    base = stdlib_bytes(seq_len=64)
    corpus = {bytes(w.tolist()) for w in torch.cat([base.x_train, base.y_train[:, -1:]], dim=1).to(torch.uint8)}
    rows = torch.cat([data.x_train, data.y_train[:, -1:]], dim=1).to(torch.uint8)
    in_distribution = torch.tensor([bytes(r.tolist()) in corpus for r in rows])  # scrambled rows are not
    assert in_distribution.sum() == len(rows) - int(data.notes["off_distribution"])
    memory = {}
    idx = torch.arange(128)
    pool = CandidatePool(data.x_train[idx], data.y_train[idx], torch.nn.Identity(), kind="lm", indices=idx,
                         data=data, memory=memory)
    chosen, weights = reference(pool, 16, torch.Generator().manual_seed(0))
    kept = memory["kept"]
    assert weights is None and kept.sum() == len(rows) // 2 and kept[idx[chosen]].all()
    # bigram statistics tell shuffled bytes from source code: the kept half is mostly source
    # (0.92 with this seed; resampling is stochastic, chance would give 0.5)
    assert in_distribution[kept].float().mean() > 0.85


def test_classification_data_is_skipped():
    pool = CandidatePool(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.nn.Linear(2, 2))
    with pytest.raises(Skipped, match="target sample"):
        reference(pool, 2, torch.Generator())
