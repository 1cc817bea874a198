import torch

from effbench.methods.attention.flashbias import extended, method
from effbench.methods.attention.sliding_window import method as sliding_window
from effbench.tasks.masked_attention import make_inputs, outputs
from tests.methods.attention.checks import assert_forwards_equal, assert_impls_match_reference

POINT = {"B": 2, "H": 2, "N": 64, "d": 16, "bias_rank": 4}


def test_extra_columns_add_exactly_the_low_rank_bias():
    q, k = torch.randn(2, 3, 10, 16, dtype=torch.float64), torch.randn(2, 3, 10, 16, dtype=torch.float64)
    u, w = torch.randn(2, 3, 10, 5, dtype=torch.float64), torch.randn(2, 3, 10, 5, dtype=torch.float64)
    qx, kx = extended(q, k, u, w)
    assert qx.shape == kx.shape == (2, 3, 10, 21)
    biased = q @ k.transpose(-2, -1) / 16**0.5 + u @ w.transpose(-2, -1)
    torch.testing.assert_close(qx @ kx.transpose(-2, -1) / 16**0.5, biased)


def test_a_log_weight_bias_gives_the_weighted_mean():
    """q = k = 0, rank 1, u = 1, w = log p: softmax gives weights p / sum(p), whatever the implementation."""
    n = 12
    q = k = torch.zeros(1, 1, n, 16, dtype=torch.float64)
    v = torch.randn(1, 1, n, 16, dtype=torch.float64)
    p = torch.rand(n, dtype=torch.float64) + 0.1
    u, w = torch.ones(1, 1, n, 1, dtype=torch.float64), p.log()[None, None, :, None]
    expected = ((p / p.sum()) @ v[0, 0]).expand(1, 1, n, 16)
    mask = method.extras["mask"](n, {}, "cpu")
    assert_forwards_equal(method, expected, q, k, v, mask, {"bias_rank": 1}, (u, w))


def test_factors_are_drawn_after_the_other_inputs():
    point = {**POINT, "window": 8}
    plain = make_inputs(point, torch.float32, "cpu", 0, sliding_window)
    biased = make_inputs(point, torch.float32, "cpu", 0, method)
    assert "u" not in plain
    for name in ("q", "k", "v", "grad_out"):
        assert torch.equal(plain[name], biased[name])
    assert biased["u"].shape == biased["w"].shape == (2, 2, 64, 4)
    assert 0.5 < (biased["u"] @ biased["w"].transpose(-2, -1)).std() < 2  # unit-scale bias


def test_the_factor_gradients_are_checked():
    inputs = make_inputs(POINT, torch.float32, "cpu", 0, method)
    got = outputs(method.impls["flashbias"].fn, inputs, POINT)
    assert set(got) == {"out", "dq", "dk", "dv", "du", "dw"}
    assert got["du"].abs().sum() > 0 and got["dw"].abs().sum() > 0


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
