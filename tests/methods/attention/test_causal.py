import torch
import torch.nn.functional as F

from effbench.methods.attention.causal import causal_mask, method
from tests.methods.attention.checks import assert_forwards_equal, assert_impls_match_reference, loop_mask

POINT = {"B": 2, "H": 2, "N": 64, "d": 16}


def test_mask_is_lower_triangular():
    assert torch.equal(causal_mask(9, {}, "cpu"), loop_mask(9, lambda i, j: j <= i))


def test_zero_queries_average_the_prefix():
    """q = 0: row i is the mean of v[0..i]; row 0 is v[0] itself."""
    n = 10
    q = torch.zeros(1, 1, n, 16, dtype=torch.float64)
    k, v = torch.randn(1, 1, n, 16, dtype=torch.float64), torch.randn(1, 1, n, 16, dtype=torch.float64)
    expected = torch.stack([v[0, 0, : i + 1].mean(0) for i in range(n)])
    assert_forwards_equal(method, expected[None, None], q, k, v, causal_mask(n, {}, "cpu"), {})


def test_is_causal_equals_the_boolean_mask():
    q, k, v = (torch.randn(1, 2, 33, 16) for _ in range(3))
    mask = causal_mask(33, {}, "cpu")
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(method.impls["sdpa"].fn(q, k, v, mask), expected)


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
