import pytest
import torch

from effbench.methods.attention._masked import reference_attention
from effbench.methods.attention.causal import causal_mask
from effbench.methods.attention.document import _packed, _unpacked, document_lengths, document_mask, method
from effbench.registry import Skipped
from tests.methods.attention.checks import assert_forwards_equal, assert_impls_match_reference

POINT = {"B": 2, "H": 2, "N": 128, "d": 16, "n_docs": 5}


def test_lengths_pack_the_sequence_and_are_seeded_by_the_point():
    lengths = document_lengths(100, {"n_docs": 7})
    assert len(lengths) == 7 and sum(lengths) == 100 and min(lengths) >= 1
    assert document_lengths(100, {"n_docs": 7}) == lengths
    assert document_lengths(10, {"n_docs": 10}) == [1] * 10
    assert document_lengths(10, {"n_docs": 1}) == [10]
    with pytest.raises(Skipped, match="cannot be packed"):
        document_lengths(4, {"n_docs": 5})


def test_mask_is_block_diagonal_causal():
    n, point = 30, {"n_docs": 4}
    doc_of = []
    for doc, length in enumerate(document_lengths(n, point)):
        doc_of += [doc] * length
    expected = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            if doc_of[i] == doc_of[j] and j <= i:
                expected[i, j] = True
    assert torch.equal(document_mask(n, point, "cpu"), expected)


def test_zero_queries_average_the_document_so_far():
    """q = 0: each token averages its own document up to itself; a document's first token is its own value."""
    n, point = 20, {"n_docs": 3}
    q = torch.zeros(1, 1, n, 16, dtype=torch.float64)
    k, v = torch.randn(1, 1, n, 16, dtype=torch.float64), torch.randn(1, 1, n, 16, dtype=torch.float64)
    rows, start = [], 0
    for length in document_lengths(n, point):
        rows += [v[0, 0, start: start + t + 1].mean(0) for t in range(length)]
        start += length
    assert_forwards_equal(method, torch.stack(rows)[None, None], q, k, v, document_mask(n, point, "cpu"), point)


def test_packed_layout_of_the_peers():
    """What the varlen peers compute: causal attention per segment of the packed (B * N) tokens, B x the lengths."""
    b, h, n, d, point = 2, 3, 40, 4, {"n_docs": 4}
    q, k, v = (torch.randn(b, h, n, d, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(_unpacked(_packed(q), b), q)
    segments, start = [], 0
    for length in document_lengths(n, point) * b:
        piece = [_packed(t)[start: start + length].transpose(0, 1)[None] for t in (q, k, v)]  # (1, H, L, d)
        segments.append(reference_attention(*piece, causal_mask(length, {}, "cpu"))[0].transpose(0, 1))
        start += length
    torch.testing.assert_close(_unpacked(torch.cat(segments), b),
                               reference_attention(q, k, v, document_mask(n, point, "cpu")))


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
