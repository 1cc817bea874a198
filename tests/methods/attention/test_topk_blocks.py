import torch

from effbench.methods.attention.topk_blocks import block_means, kept_blocks, method, topk_mask
from effbench.tasks.masked_attention import make_inputs
from tests.methods.attention.checks import assert_forwards_equal, assert_impls_match_reference, zero_query_answer

POINT = {"B": 2, "H": 2, "N": 128, "d": 16, "block": 16, "topk": 3}


def test_block_means_average_each_block_even_the_short_last_one():
    x = torch.randn(1, 2, 10, 3, dtype=torch.float64)
    means = block_means(x, 4)
    assert means.shape == (1, 2, 3, 3) and means.dtype == torch.float32
    for h in range(2):
        for qb, (start, end) in enumerate([(0, 4), (4, 8), (8, 10)]):
            torch.testing.assert_close(means[0, h, qb].double(), x[0, h, start:end].mean(0), rtol=1e-6, atol=1e-6)


def test_kept_blocks_are_the_top_scoring_past_blocks_plus_the_diagonal():
    block, topk = 4, 2
    q, k = torch.randn(2, 3, 28, 8), torch.randn(2, 3, 28, 8)
    scores = block_means(q, block) @ block_means(k, block).transpose(-2, -1)
    kept = kept_blocks(q, k, block, topk)
    t = 7
    for b in range(2):
        for h in range(3):
            for qb in range(t):
                past = sorted(range(qb + 1), key=lambda kb: -scores[b, h, qb, kb].item())
                expected = set(past[:topk]) | {qb}
                assert set(kept[b, h, qb].nonzero().flatten().tolist()) == expected


def test_a_dominant_key_block_is_chosen_by_every_later_query_block():
    n, d, block = 32, 4, 8
    q = torch.zeros(1, 1, n, d)
    q[..., 0] = 1.0
    k = torch.zeros(1, 1, n, d)
    k[:, :, 8:16, 0] = 10.0  # block 1 scores 10 for every query block, the others 0
    mask = topk_mask(q, k, {"block": block, "topk": 1})[0, 0]
    expected = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            kept = {1, i // block} if i // block >= 1 else {0}
            if j <= i and j // block in kept:
                expected[i, j] = True
    assert torch.equal(mask, expected)


def test_the_mask_is_built_from_each_case_data():
    a, b = (make_inputs(POINT, torch.float32, "cpu", seed, method)["mask"] for seed in (0, 1))
    assert a.shape == (2, 2, 128, 128) and a.dtype == torch.bool
    assert not torch.equal(a, b)  # other q, k: other blocks
    assert not torch.triu(a, diagonal=1).any()  # causal
    assert torch.diagonal(a, dim1=-2, dim2=-1).all()  # every row keeps its diagonal block


def test_zero_queries_average_the_kept_keys():
    n, point = 48, {"block": 8, "topk": 2}
    k, v = torch.randn(1, 2, n, 16, dtype=torch.float64), torch.randn(1, 2, n, 16, dtype=torch.float64)
    mask = topk_mask(torch.randn(1, 2, n, 16), k.float(), point)  # chosen by other queries, then q = 0
    q = torch.zeros(1, 2, n, 16, dtype=torch.float64)
    assert_forwards_equal(method, zero_query_answer(v, mask), q, k, v, mask, point)


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
