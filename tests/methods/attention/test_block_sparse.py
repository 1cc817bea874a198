"""Block layouts of attention masks, and the block-sparse Triton kernel (run in the CPU interpreter)."""

import gc

import pytest
import torch

from effbench.kernels import _blocks
from effbench.kernels._blocks import EMPTY, FULL, PARTIAL, BlockLayout, block_density, density, layout_for
from effbench.methods.attention._masked import reference_attention
from effbench.registry import Unavailable

triton = pytest.importorskip("triton")

from effbench.kernels.block_sparse_attention import block_sparse_attention  # noqa: E402

E, P, F = EMPTY, PARTIAL, FULL


def _hand_made_mask() -> torch.Tensor:
    """N = 40, block 16: three tile rows, the last 8 wide; kinds [[F, E, P], [P, F, E], [E, E, F]]."""
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[0:16, 0:16] = True
    mask[3, 35] = True  # tile (0, 2): one pair
    mask[16:32, 16:32] = True
    mask[20, 0:5] = True  # tile (1, 0): part of one row
    mask[32:40, 32:40] = True  # tile (2, 2): every in-range pair (the padding does not count)
    return mask


def test_tiles_are_classified_and_listed():
    layout = BlockLayout.from_mask(_hand_made_mask(), 16)
    assert layout.num_blocks == 3 and layout.num_groups == 1
    assert layout.tile_kinds()[0].tolist() == [[F, E, P], [P, F, E], [E, E, F]]
    assert layout.counts.tolist() == [[2, 2, 1]]
    assert layout.lut[0].tolist() == [[0, 2], [0, 1], [2, 0]]  # the last row padded (block 0, tile -1)
    assert layout.lut_tile[0].tolist() == [[-1, 0], [1, -1], [-1, -1]]
    # transposed: q blocks of each kv block, pointing at the same partial tiles
    assert layout.t_counts.tolist() == [[2, 1, 2]]
    assert layout.t_lut[0].tolist() == [[0, 1], [1, 0], [0, 2]]
    assert layout.t_lut_tile[0].tolist() == [[-1, 1], [-1, -1], [0, -1]]
    assert layout.partial.shape == (2, 16, 16) and layout.partial.dtype == torch.uint8
    assert layout.partial[0].nonzero().tolist() == [[3, 3]]
    assert layout.partial[1].nonzero().tolist() == [[4, c] for c in range(5)]
    assert layout.num_nonempty == 5 and layout.num_partial == 2


def test_layout_of_a_per_head_mask():
    n = 40
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    heads = [j <= i, torch.ones(n, n, dtype=torch.bool), (j - i).abs() < 8, _hand_made_mask(), j <= i, i == j]
    mask = torch.stack(heads).view(2, 3, n, n)
    layout = BlockLayout.from_mask(mask, 16)
    assert (layout.mask_batch, layout.mask_heads) == (2, 3)
    assert layout.group_strides(2, 3) == (3, 1)
    for g, head in enumerate(heads):
        alone = BlockLayout.from_mask(head, 16)
        assert torch.equal(layout.tile_kinds()[g], alone.tile_kinds()[0])
        assert torch.equal(layout.counts[g], alone.counts[0])
    assert layout.tile_kinds()[0].tolist() == [[P, E, E], [F, P, E], [F, F, P]]  # causal
    assert layout.num_partial == sum(BlockLayout.from_mask(h, 16).num_partial for h in heads)
    assert BlockLayout.from_mask(mask[:1], 16).group_strides(4, 3) == (0, 1)  # shared by the batch
    assert BlockLayout.from_mask(mask[:, :1], 16).group_strides(2, 5) == (1, 0)  # shared by the heads
    with pytest.raises(ValueError):
        layout.group_strides(2, 4)


def test_layout_keeps_nothing_quadratic():
    n, window = 256, 16
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    layout = BlockLayout.from_mask((j <= i) & (j > i - window), 16)
    sizes = [getattr(layout, f).numel() for f in ("counts", "lut", "lut_tile", "t_counts", "t_lut", "t_lut_tile")]
    assert max(sizes) <= 16 * 2 and layout.num_nonempty == 31 and layout.num_partial == 31  # diagonal + band
    assert layout.partial.numel() == 31 * 16 * 16


def test_density():
    i, j = torch.arange(32)[:, None], torch.arange(32)[None, :]
    causal = j <= i
    assert density(causal) == pytest.approx(32 * 33 / 2 / 32**2)
    assert block_density(BlockLayout.from_mask(causal, 16)) == pytest.approx(3 / 4)


def test_layouts_are_cached_per_mask():
    mask = _hand_made_mask()
    layout = layout_for(mask, 16)
    assert layout_for(mask, 16) is layout
    assert layout_for(mask, 32) is not layout
    mask[39, 0] = True  # written in place: rebuilt
    rebuilt = layout_for(mask, 16)
    assert rebuilt is not layout and rebuilt.tile_kinds()[0, 2, 0] == PARTIAL
    before = len(_blocks._CACHE)
    del mask
    gc.collect()
    assert len(_blocks._CACHE) < before  # freed masks drop their layouts


# ---- the kernel, in fp32 against the reference in float64 ----

N = 50  # not a multiple of the block


def _masks(n: int) -> dict[str, torch.Tensor]:
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    gen = torch.Generator().manual_seed(1)
    t = -(-n // 16)
    blocks = (torch.rand(t, t, generator=gen) < 0.4) | torch.eye(t, dtype=torch.bool)
    block_mask = blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)[:n, :n]
    noisy = (torch.rand(n, n, generator=gen) < 0.3) | (i == j)
    causal = j <= i
    window = causal & (j > i - 20)
    dilated = causal & ((i - j) % 3 == 0)
    return {
        "dense": torch.ones(n, n, dtype=torch.bool),
        "causal": causal,
        "sliding_window": window,
        "random_blocks": block_mask,
        "dilated": dilated,
        "per_head": torch.stack([causal, window, dilated, noisy]).view(2, 2, n, n),
        "per_head_shared_by_batch": torch.stack([noisy, dilated])[None],
    }


MASKS = _masks(N)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach()).norm() / b.detach().norm())


def _run(mask: torch.Tensor, seed: int, n: int = N, block: int | None = 16, shape=(2, 2)):
    gen = torch.Generator().manual_seed(seed)
    q, k, v, grad = (torch.randn(*shape, n, 16, generator=gen) for _ in range(4))
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out = block_sparse_attention(*leaves, mask, block=block)
    out.backward(grad)
    return (q, k, v, grad), out, [x.grad for x in leaves]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(MASKS))
def test_kernel_matches_the_reference(name, seed):
    mask = MASKS[name]
    (q, k, v, grad), out, grads = _run(mask, seed)
    truth = [x.double().requires_grad_() for x in (q, k, v)]
    expected = reference_attention(*truth, mask)
    expected.backward(grad.double())
    assert out.dtype == torch.float32 and out.shape == q.shape
    assert _rel(out, expected) <= 1e-4
    for got, want in zip(grads, truth, strict=True):
        assert got.dtype == torch.float32
        assert _rel(got, want.grad) <= 1e-4


def test_default_block_and_short_sequence():
    n = 12  # shorter than one block
    mask = MASKS["causal"][:n, :n].clone()
    (q, k, v, _), out, _ = _run(mask, 2, n=n, block=None, shape=(1, 1))
    torch.testing.assert_close(out, reference_attention(q, k, v, mask), rtol=1e-5, atol=1e-5)


def test_rows_with_no_allowed_key_give_zeros():
    """Row 5 may attend nothing: output 0, dq 0; dk, dv as if that row's output were unused."""
    mask = MASKS["causal"].clone()
    mask[5] = False
    (q, k, v, grad), out, (dq, dk, dv) = _run(mask, 0)
    assert torch.all(out[:, :, 5] == 0) and torch.all(dq[:, :, 5] == 0)
    filled = mask.clone()
    filled[5] = True
    grad = grad.clone()
    grad[:, :, 5] = 0
    truth = [x.double().requires_grad_() for x in (q, k, v)]
    expected = reference_attention(*truth, filled)
    expected.backward(grad.double())
    keep = torch.arange(N) != 5
    assert _rel(out[:, :, keep], expected[:, :, keep]) <= 1e-4
    assert _rel(dq[:, :, keep], truth[0].grad[:, :, keep]) <= 1e-4
    assert _rel(dk, truth[1].grad) <= 1e-4 and _rel(dv, truth[2].grad) <= 1e-4


def test_unsupported_inputs():
    mask = MASKS["causal"]
    x = torch.randn(1, 1, N, 16, dtype=torch.float64)
    with pytest.raises(Unavailable):  # the interpreter computes fp32 only
        block_sparse_attention(x, x, x, mask)
    y = torch.randn(1, 1, N, 24)
    with pytest.raises(Unavailable):
        block_sparse_attention(y, y, y, mask)
    z = torch.randn(1, 1, N, 16)
    with pytest.raises(ValueError):
        block_sparse_attention(z, z, z, mask, block=24)
