import pytest
import torch

from effbench.methods.attention.longformer import longformer_mask, method
from effbench.registry import Skipped
from tests.methods.attention.checks import (
    assert_forwards_equal,
    assert_impls_match_reference,
    zero_query_answer,
)

POINT = {"B": 1, "H": 2, "N": 128, "d": 16, "window": 16, "n_global": 4}


def test_mask_is_a_symmetric_window_plus_global_rows_and_columns():
    n, window, n_global = 14, 6, 2
    expected = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            if abs(i - j) <= window // 2 or i < n_global or j < n_global:
                expected[i, j] = True
    mask = longformer_mask(n, {"window": window, "n_global": n_global}, "cpu")
    assert torch.equal(mask, expected)
    assert torch.equal(mask, mask.T)  # not causal: symmetric
    assert mask[:n_global].all() and mask[:, :n_global].all()
    assert mask[8].nonzero().flatten().tolist() == [0, 1, 5, 6, 7, 8, 9, 10, 11]


def test_global_tokens_are_required():
    with pytest.raises(Skipped, match="n_global"):
        longformer_mask(8, {"window": 4}, "cpu")


def test_zero_queries_average_the_allowed_keys():
    n, point = 20, {"window": 6, "n_global": 3}
    q = torch.zeros(1, 1, n, 16, dtype=torch.float64)
    k, v = torch.randn(1, 1, n, 16, dtype=torch.float64), torch.randn(1, 1, n, 16, dtype=torch.float64)
    mask = longformer_mask(n, point, "cpu")
    expected = zero_query_answer(v, mask)
    torch.testing.assert_close(expected[0, 0, 0], v[0, 0].mean(0))  # a global row averages everything
    torch.testing.assert_close(expected[0, 0, 10], torch.cat([v[0, 0, :3], v[0, 0, 7:14]]).mean(0))
    assert_forwards_equal(method, expected, q, k, v, mask, point)


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
