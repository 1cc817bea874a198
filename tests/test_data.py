import math

import pytest
import torch

from effbench.data import (
    DATASETS,
    IGNORE,
    associative_recall,
    copying,
    digits,
    digits_duplicated,
    digits_label_noise,
    long_tail_mixture,
    sparse_parity,
    stdlib_bytes,
    teacher_student,
    zipf_tokens,
)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_dataset_is_well_formed_and_deterministic(name):
    data = DATASETS[name]()
    assert data.kind in ("classify", "regress", "lm")
    assert data.x_train.shape[0] == data.y_train.shape[0] > 0
    assert data.x_eval.shape[0] == data.y_eval.shape[0] > 0
    assert len(data.content_hash) == 16
    DATASETS[name].cache_clear()
    again = DATASETS[name]()
    assert again.content_hash == data.content_hash and torch.equal(again.y_train, data.y_train)
    if data.kind == "classify":
        assert data.y_train.min() >= 0 and data.y_train.max() < data.n_classes
        assert data.x_train.dtype == torch.float32
    if data.kind == "lm":
        assert data.x_train.dtype == torch.long and data.x_train.max() < data.n_classes
        scored = data.y_train[data.y_train != IGNORE]
        assert scored.numel() > 0 and scored.min() >= 0 and scored.max() < data.n_classes


def test_digits_is_the_sklearn_set():
    data = digits()
    assert data.x_train.shape == (1348, 64) and data.x_eval.shape == (449, 64)
    assert data.content_hash == "52c9a1df87196d4f"  # frozen: sklearn ships these pixels; the split is numpy PCG64(0)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def test_label_noise_flips_the_asked_fraction_to_other_classes():
    clean, noisy = digits(), digits_label_noise(0.3, seed=0)
    flipped = clean.y_train != noisy.y_train
    assert abs(flipped.float().mean().item() - 0.3) < 0.04
    assert torch.equal(clean.y_eval, noisy.y_eval)  # eval stays clean
    assert digits_label_noise(0.3, seed=1).content_hash != noisy.content_hash


def test_duplicates_repeat_examples():
    data = digits_duplicated(0.5, copies=4)
    assert data.x_train.shape[0] == 1348 + 4 * 674
    assert torch.unique(data.x_train, dim=0).shape[0] <= 1348


def test_parity_labels_follow_the_secret_bits():
    data = sparse_parity(bits=10, k=3, n_train=256, n_eval=64, seed=3)
    secret = [int(i) for i in data.notes["secret"].split(",")]
    bits = (data.x_train > 0).long()
    assert torch.equal(bits[:, secret].sum(1) % 2, data.y_train)


def test_associative_recall_answer_is_the_value_of_the_query_key():
    data = associative_recall(pairs=4, keys=8, values=8, n_train=64, n_eval=8)
    for x, y in zip(data.x_train, data.y_train, strict=True):
        keys, values, query = x[0:-1:2], x[1:-1:2], x[-1]
        assert y[-1] == values[(keys == query).nonzero()[0, 0]]
        assert (y[:-1] == IGNORE).all()


def test_copying_targets_are_the_payload():
    data = copying(length=5, vocab=7, n_train=16, n_eval=4)
    x, y = data.x_train, data.y_train
    assert (x[:, 5] == 7).all()  # separator
    assert torch.equal(y[:, 5:], x[:, :5]) and (y[:, :5] == IGNORE).all()


def test_long_tail_is_imbalanced_and_eval_balanced():
    data = long_tail_mixture(classes=5, n_head=200, imbalance=20.0, n_eval_per_class=10)
    counts = torch.bincount(data.y_train)
    assert counts[0] == 200 and counts[-1] == 10
    assert torch.bincount(data.y_eval).tolist() == [10] * 5


def test_teacher_student_is_learnable_regression():
    data = teacher_student(n_train=64, n_eval=16, dim=4, hidden=8, noise=0.0)
    assert data.y_train.shape == (64, 1) and data.kind == "regress"


def test_stdlib_corpus_records_its_files():
    data = stdlib_bytes(seq_len=64, max_bytes=200_000)
    assert int(data.notes["files"]) > 0 and len(data.notes["file_list_hash"]) == 16
    assert torch.equal(data.x_train[:, 1:], data.y_train[:, :-1])  # next-byte targets


def test_zipf_frequencies_fall_with_rank():
    data = zipf_tokens(vocab=1000, seq_len=32, n_train=256, n_eval=16, exponent=1.1)
    counts = torch.bincount(data.x_train.flatten(), minlength=1000).sort(descending=True).values.double()
    assert counts[0] > 5 * counts[20] > 0
    assert 0 < float(data.notes["entropy_nats"]) < math.log(1000)


def test_key_value_lookup_answers_each_query_with_its_stored_value():
    from effbench.data import key_value_lookup

    pairs, queries, keys, values = 5, 3, 8, 4
    data = key_value_lookup(pairs=pairs, queries=queries, keys=keys, values=values, n_train=32, n_eval=4)
    x, y = data.x_train, data.y_train
    assert x.shape == (32, pairs + queries) and (y[:, :pairs] == IGNORE).all()
    store, asked = x[:, :pairs], x[:, pairs:] - keys * values
    for row in range(32):
        stored = {int(t) // values: int(t) % values for t in store[row]}
        assert len(stored) == pairs  # distinct keys
        assert len(set(asked[row].tolist())) == queries
        for j, key in enumerate(asked[row].tolist()):
            assert y[row, pairs + j] == keys * values + keys + stored[key]


def test_easy_hard_noisy_kinds_have_their_margins_and_noise():
    from effbench.data import easy_hard_noisy

    data = easy_hard_noisy(n_train=1000, n_eval=400, seed=3)
    assert data.notes == {"easy": "500", "hard": "350", "noisy": "150"}
    # the teacher is the first draw of the dataset's generator: rebuild it and check each kind
    gen = torch.Generator().manual_seed(3)
    teacher = torch.randn(20, 4, generator=gen)
    logits = data.x_train @ teacher
    top2 = logits.topk(2, dim=-1).values
    margin = top2[:, 0] - top2[:, 1]
    agrees = logits.argmax(-1) == data.y_train
    assert int((~agrees).sum()) == 150  # every noisy label is another class
    assert (margin[agrees] > 2).sum() == 500 and (margin[agrees] < 0.5).sum() == 350
    assert torch.equal((data.x_eval @ teacher).argmax(-1), data.y_eval)  # eval is clean
