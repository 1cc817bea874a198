from collections import Counter

import pytest
import torch

from effbench.methods.samplers.dsir import hashed_ngram_counts
from effbench.methods.samplers.hashed_ngrams import bincount, method, reference, triton_counts
from effbench.registry import Skipped
from effbench.tasks.scoring import task

MIX = 0x9E3779B1

FAST = {
    "bincount": bincount,
    # Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1): blocks of 8 positions, so the
    # bigram that straddles two blocks and the row's last position are both exercised
    "triton": lambda *a: triton_counts(*a, block_t=8),
    "triton_default_blocks": triton_counts,
}


def dict_counts(tokens: torch.Tensor, buckets: int, vocab: int = 256) -> torch.Tensor:
    """Pure-Python counts: every unigram id a and bigram id vocab + a * vocab + b, hashed DSIR's way."""
    rows = []
    for row in tokens.tolist():
        ids = row + [vocab + a * vocab + b for a, b in zip(row, row[1:], strict=False)]
        counter = Counter(i * MIX % 2**32 % buckets for i in ids)
        rows.append([counter[k] for k in range(buckets)])
    return torch.tensor(rows, dtype=torch.float64)


def test_known_answer_hand_counted():
    """Row (1, 2, 1) with vocab 4 and 5 buckets: unigram ids 1, 2, 1; bigram ids 4 + 1*4 + 2 = 10,
    4 + 2*4 + 1 = 13. Hashes: 1 -> 2654435761 % 5 = 1, 2 -> 5308871522 mod 2^32 = 1013904226 -> 1,
    10 -> 26544357610 mod 2^32 = 774553834 -> 4, 13 -> 34507664893 mod 2^32 = 147926525 -> 0."""
    tokens = torch.tensor([[1, 2, 1]])
    expected = torch.tensor([[1.0, 3.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    for fn in (reference, *FAST.values()):
        got = fn(tokens, 5, 4)
        assert torch.equal(got.double(), expected), fn


@pytest.mark.parametrize("impl", ["reference", *sorted(FAST)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_match_a_python_dictionary_exactly(impl, seed):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 256, (7, 29), generator=gen)  # odd sizes: 29 positions in blocks of 8
    buckets = 97 + seed  # few buckets: many collisions, many atomic adds to one address
    fn = reference if impl == "reference" else FAST[impl]
    got = fn(tokens, buckets)
    assert got.shape == (7, buckets)
    assert torch.equal(got.double().cpu(), dict_counts(tokens, buckets))
    assert got.sum().item() == 7 * (29 + 28)


@pytest.mark.parametrize("impl", sorted(FAST))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_impls_match_dsir_on_task_inputs(impl, seed):
    point = task.grids["smoke"][-1]
    inputs = task.make_inputs(point, torch.float32, "cpu", seed, method)
    truth = hashed_ngram_counts(inputs["tokens"], point["buckets"])
    out = task.outputs(FAST[impl], inputs, point)["counts"]
    assert torch.equal(out.double(), truth)


def test_single_token_rows_have_no_bigram():
    tokens = torch.tensor([[5], [7]])
    for fn in (reference, *FAST.values()):
        got = fn(tokens, 11).double()
        assert got.sum().item() == 2 and torch.equal(got, dict_counts(tokens, 11))


def test_points_of_the_other_kind_and_other_dtypes_are_skipped():
    head_point = next(p for p in task.grids["smoke"] if p["inputs"] == "head")
    with pytest.raises(Skipped, match="head"):
        task.make_inputs(head_point, torch.float32, "cpu", 0, method)
    with pytest.raises(Skipped, match="float32 only"):
        task.make_inputs(task.grids["smoke"][-1], torch.bfloat16, "cpu", 0, method)


def test_triton_autotuned_path_on_rows_of_several_blocks():
    """Rows of at least 256 tokens take the autotuned kernel (the interpreter keeps its first config, 256
    positions per program): 300 positions make a second, partial block, and the counts stay exact."""
    from effbench.kernels import _tune

    tokens = torch.randint(0, 256, (3, 300), generator=torch.Generator().manual_seed(5))
    _tune.forget()
    got = triton_counts(tokens, 101)
    assert _tune.chosen() == {"_ngram_counts_kernel": "BLOCK_T=256 num_warps=4 num_stages=3"}
    assert torch.equal(got.double(), dict_counts(tokens, 101))
