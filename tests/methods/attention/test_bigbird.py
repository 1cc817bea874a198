import torch

from effbench.methods.attention.bigbird import bigbird_blocks, bigbird_mask, method
from effbench.tasks.masked_attention import make_inputs
from tests.methods.attention.checks import assert_forwards_equal, assert_impls_match_reference, zero_query_answer

PARAMS = {"block": 4, "n_random_blocks": 2, "n_global": 3}
POINT = {"B": 1, "H": 2, "N": 128, "d": 16, "block": 16, "n_random_blocks": 2, "n_global": 8}


def test_blocks_are_a_window_plus_random_blocks_outside_it():
    n = 40  # 10 blocks of 4
    blocks = bigbird_blocks(n, PARAMS)
    assert blocks.shape == (10, 10)
    for qb in range(10):
        window = {kb for kb in range(10) if abs(qb - kb) <= 1}
        kept = set(blocks[qb].nonzero().flatten().tolist())
        assert window <= kept
        assert len(kept - window) == 2  # exactly n_random_blocks, all outside the window


def test_random_blocks_are_seeded_by_the_point():
    assert torch.equal(bigbird_blocks(40, PARAMS), bigbird_blocks(40, dict(PARAMS)))
    draws = {tuple(bigbird_blocks(64, {**PARAMS, "N": n}).flatten().tolist()) for n in range(8)}
    assert len(draws) > 1  # another point, another draw
    few = bigbird_blocks(12, {**PARAMS, "n_random_blocks": 5})  # 3 blocks: fewer than 5 to draw, all taken
    assert few.sum().item() == 9


def test_token_mask_from_the_blocks_and_the_global_tokens():
    n = 38  # the last block is 2 tokens
    blocks = bigbird_blocks(n, PARAMS)
    expected = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            if blocks[i // 4, j // 4] or i < 3 or j < 3:
                expected[i, j] = True
    assert torch.equal(bigbird_mask(n, PARAMS, "cpu"), expected)


def test_every_seed_gets_the_same_pattern():
    masks = [make_inputs(POINT, torch.float32, "cpu", seed, method)["mask"] for seed in (0, 1)]
    assert torch.equal(*masks)


def test_zero_queries_average_the_allowed_keys():
    n = 24
    q = torch.zeros(1, 1, n, 16, dtype=torch.float64)
    k, v = torch.randn(1, 1, n, 16, dtype=torch.float64), torch.randn(1, 1, n, 16, dtype=torch.float64)
    mask = bigbird_mask(n, PARAMS, "cpu")
    assert_forwards_equal(method, zero_query_answer(v, mask), q, k, v, mask, PARAMS)


def test_impls_match_reference():
    assert_impls_match_reference(method, POINT)
