import pytest
import torch

from effbench.methods.attention.sliding_window import method, window_mask
from effbench.registry import Skipped
from tests.methods.attention.checks import assert_forwards_equal, assert_impls_match_reference, loop_mask

POINT = {"B": 1, "H": 2, "N": 128, "d": 16, "window": 24}


def test_mask_is_a_causal_band():
    mask = window_mask(7, {"window": 3}, "cpu")
    assert mask.sum(1).tolist() == [1, 2, 3, 3, 3, 3, 3]
    assert mask[5].nonzero().flatten().tolist() == [3, 4, 5]
    assert not torch.triu(mask, diagonal=1).any()
    assert torch.equal(mask, loop_mask(7, lambda i, j: i - 3 < j <= i))


def test_a_point_without_a_window_is_skipped():
    with pytest.raises(Skipped, match="window"):
        window_mask(8, {"B": 1}, "cpu")


def test_zero_queries_average_the_window():
    """q = 0: each row averages the values of exactly the keys in its window."""
    n, window = 11, 4
    point = {"window": window}
    q = torch.zeros(1, 1, n, 16, dtype=torch.float64)
    k, v = torch.randn(1, 1, n, 16, dtype=torch.float64), torch.randn(1, 1, n, 16, dtype=torch.float64)
    mask = window_mask(n, point, "cpu")
    expected = torch.stack([v[0, 0, max(0, i - window + 1): i + 1].mean(0) for i in range(n)])
    assert_forwards_equal(method, expected[None, None], q, k, v, mask, point)


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
