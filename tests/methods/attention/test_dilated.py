import pytest
import torch

from effbench.methods.attention._masked import reference_attention
from effbench.methods.attention.dilated import dilated_mask, merge_residues, method, split_residues
from effbench.methods.attention.sliding_window import window_mask
from effbench.registry import Skipped
from tests.methods.attention.checks import (
    assert_forwards_equal,
    assert_impls_match_reference,
    loop_mask,
    zero_query_answer,
)

POINT = {"B": 1, "H": 2, "N": 128, "d": 16, "window": 8, "dilation": 4}


def test_mask_takes_every_dilation_th_key():
    n, window, dilation = 13, 3, 2
    expected = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for step in range(window):  # keys i, i - d, i - 2d, ...
            j = i - step * dilation
            if j >= 0:
                expected[i, j] = True
    mask = dilated_mask(n, {"window": window, "dilation": dilation}, "cpu")
    assert torch.equal(mask, expected)
    assert mask[12].nonzero().flatten().tolist() == [8, 10, 12]
    in_window = lambda i, j: j <= i and (i - j) % dilation == 0 and i - j < window * dilation
    assert torch.equal(mask, loop_mask(n, in_window))


def test_dilation_one_is_the_sliding_window():
    point = {"window": 5, "dilation": 1}
    assert torch.equal(dilated_mask(17, point, "cpu"), window_mask(17, point, "cpu"))


def test_residue_classes_round_trip_and_carry_the_pattern():
    """What the peers compute: plain causal windows over the strided subsequences, merged back."""
    b, h, n, d, window, dilation = 2, 3, 24, 4, 3, 4
    x = torch.randn(b, h, n, d, dtype=torch.float64)
    split = split_residues(x, dilation)
    assert split.shape == (b * dilation, n // dilation, h, d)
    torch.testing.assert_close(split[1, 2], x[0, :, 2 * dilation + 1])  # class 1, step 2 = position 9 of row 0
    torch.testing.assert_close(merge_residues(split, dilation), x)

    q, k, v = (torch.randn(b, h, n, d, dtype=torch.float64) for _ in range(3))
    point = {"window": window, "dilation": dilation}
    per_class = reference_attention(*(split_residues(t, dilation).transpose(1, 2) for t in (q, k, v)),
                                    window_mask(n // dilation, point, "cpu"))
    torch.testing.assert_close(merge_residues(per_class.transpose(1, 2), dilation),
                               reference_attention(q, k, v, dilated_mask(n, point, "cpu")))


def test_ragged_residue_classes_are_skipped():
    with pytest.raises(Skipped, match="multiple of the dilation"):
        split_residues(torch.zeros(1, 1, 10, 4), 3)


def test_zero_queries_average_the_dilated_keys():
    n, point = 15, {"window": 3, "dilation": 3}
    q = torch.zeros(1, 1, n, 16, dtype=torch.float64)
    k, v = torch.randn(1, 1, n, 16, dtype=torch.float64), torch.randn(1, 1, n, 16, dtype=torch.float64)
    mask = dilated_mask(n, point, "cpu")
    expected = zero_query_answer(v, mask)
    torch.testing.assert_close(expected[0, 0, 14], v[0, 0, [8, 11, 14]].mean(0))
    assert_forwards_equal(method, expected, q, k, v, mask, point)


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
