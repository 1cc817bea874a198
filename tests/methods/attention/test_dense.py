import torch

from effbench.methods.attention.dense import method
from tests.methods.attention.checks import assert_forwards_equal, assert_impls_match_reference

POINT = {"B": 2, "H": 2, "N": 64, "d": 16}


def test_zero_queries_average_all_values():
    """q = 0 gives equal scores: every output row is the mean of all values."""
    b, h, n, d = 1, 2, 9, 16
    q, k = torch.zeros(b, h, n, d), torch.randn(b, h, n, d)
    v = torch.randn(b, h, n, d)
    mask = method.extras["mask"](n, {}, "cpu")
    assert_forwards_equal(method, v.mean(dim=2, keepdim=True).expand(b, h, n, d), q, k, v, mask, {})


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
