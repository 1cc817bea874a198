import torch

from effbench.methods.attention.sliding_window import method, window_mask


def test_mask_is_a_causal_band():
    mask = window_mask(7, {"window": 3}, "cpu")
    assert mask.sum(1).tolist() == [1, 2, 3, 3, 3, 3, 3]
    assert mask[5].nonzero().flatten().tolist() == [3, 4, 5]
    assert not torch.triu(mask, diagonal=1).any()


def test_zero_queries_average_the_window():
    """q = 0: each row averages the values of exactly the keys in its window."""
    n, window = 11, 4
    q = torch.zeros(1, 1, n, 8, dtype=torch.float64)
    k, v = torch.randn(1, 1, n, 8, dtype=torch.float64), torch.randn(1, 1, n, 8, dtype=torch.float64)
    mask = window_mask(n, {"window": window}, "cpu")
    expected = torch.stack([v[0, 0, max(0, i - window + 1): i + 1].mean(0) for i in range(n)])
    for impl in method.impls.values():
        torch.testing.assert_close(impl.fn(q, k, v, mask)[0, 0], expected)
