import torch

from effbench.methods.attention.prefix_lm import method, prefix_lm_mask
from tests.methods.attention.checks import assert_forwards_equal, assert_impls_match_reference, loop_mask

POINT = {"B": 2, "H": 2, "N": 64, "d": 16, "prefix": 16}


def test_mask_is_bidirectional_on_the_prefix_and_causal_after():
    n, prefix = 9, 3
    expected = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            if j <= i or j < prefix:
                expected[i, j] = True
    mask = prefix_lm_mask(n, {"prefix": prefix}, "cpu")
    assert torch.equal(mask, expected)
    assert torch.equal(mask, loop_mask(n, lambda i, j: j <= i or j < prefix))
    assert mask[0].nonzero().flatten().tolist() == [0, 1, 2]  # the first token sees the whole prefix
    assert not mask[:prefix, prefix:].any()  # and nothing of the target


def test_zero_queries_prefix_rows_average_the_prefix():
    n, prefix = 12, 5
    q = torch.zeros(1, 1, n, 16, dtype=torch.float64)
    k, v = torch.randn(1, 1, n, 16, dtype=torch.float64), torch.randn(1, 1, n, 16, dtype=torch.float64)
    rows = [v[0, 0, :prefix].mean(0) if i < prefix else v[0, 0, : i + 1].mean(0) for i in range(n)]
    mask = prefix_lm_mask(n, {"prefix": prefix}, "cpu")
    assert_forwards_equal(method, torch.stack(rows)[None, None], q, k, v, mask, {"prefix": prefix})


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
