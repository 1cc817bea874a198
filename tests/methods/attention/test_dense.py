import torch

from effbench.methods.attention.dense import method


def test_zero_queries_average_all_values():
    """q = 0 gives equal scores: every output row is the mean of all values."""
    b, h, n, d = 1, 2, 9, 4
    q, k = torch.zeros(b, h, n, d), torch.randn(b, h, n, d)
    v = torch.randn(b, h, n, d)
    mask = method.extras["mask"](n, {}, "cpu")
    for impl in method.impls.values():
        out = impl.fn(q, k, v, mask)
        torch.testing.assert_close(out, v.mean(dim=2, keepdim=True).expand_as(out))
