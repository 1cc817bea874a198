"""Tile helpers shared by the kernels (``@triton.jit`` device functions).

Element offsets are int64: a row index times a stride passes 2^31 once V x D does (V = 256000 at D = 8448,
N x D at N = 262144 tokens of D = 8192), and int32 arithmetic would wrap to another row silently."""

from typing import Any

import triton
import triton.language as tl

# The autotune space of the kernels built on these tiles (a logit tile, then its gradient into both operands):
# the first entry is the interpreter's, and `effbench kernels` compiles every entry. sm_90: no spills but the
# SigLIP backward's 8 B at 128 x 128 (it keeps the tile's dot products for dT as well); sm_80 (no wgmma) spills
# 48-344 B at all but 64 x 128: the autotuner times them, so a spilling config wins only when still fastest.
TILE_CONFIGS = [
    triton.Config({"BLOCK_N": 64, "BLOCK_V": 64, "BLOCK_D": 64}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_N": 128, "BLOCK_V": 128, "BLOCK_D": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_N": 128, "BLOCK_V": 64, "BLOCK_D": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_N": 64, "BLOCK_V": 128, "BLOCK_D": 64}, num_warps=8, num_stages=3),
]


def tile_blocks(blocks: dict[str, int] | None) -> dict[str, int]:
    """The constexprs of explicit ``blocks`` (block_n, block_v, block_d); {} lets the autotuner choose."""
    if not blocks:
        return {}
    if set(blocks) != {"block_n", "block_v", "block_d"}:
        raise ValueError(f"blocks: give all of block_d, block_n, block_v, got {sorted(blocks)}")
    return {"BLOCK_N": blocks["block_n"], "BLOCK_V": blocks["block_v"], "BLOCK_D": blocks["block_d"]}


def tile_launch(tuned: Any, blocks: dict[str, int] | None) -> tuple[Any, dict[str, int]]:
    """(kernel, constexprs) of a launch: the autotuned kernel when ``blocks`` is None, else the plain jit function
    under it at those blocks."""
    constexprs = tile_blocks(blocks)
    return (tuned.fn if constexprs else tuned), constexprs


def tile_grid(rows: int, cols: int):
    """The 2-D launch grid of (BLOCK_N, BLOCK_V) tiles, at whatever blocks the launch uses."""
    return lambda meta: (triton.cdiv(rows, meta["BLOCK_N"]), triton.cdiv(cols, meta["BLOCK_V"]))


def most_tiles(rows: int, cols: int, constexprs: dict[str, int]) -> int:
    """Size of a per-tile partial-sum buffer: the tiles of the explicit blocks, else of the config with most."""
    shapes = [(constexprs["BLOCK_N"], constexprs["BLOCK_V"])] if constexprs else [
        (c.kwargs["BLOCK_N"], c.kwargs["BLOCK_V"]) for c in TILE_CONFIGS]
    return max(triton.cdiv(rows, n) * triton.cdiv(cols, v) for n, v in shapes)


@triton.jit
def _logit_tile(x_ptr, w_ptr, rows, cols, row_mask, col_mask, D, stride_x, stride_w,
                BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):
    z = tl.zeros([BLOCK_N, BLOCK_V], dtype=tl.float32)
    x_rows = rows.to(tl.int64)[:, None] * stride_x
    w_rows = cols.to(tl.int64)[:, None] * stride_w
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        in_d = ds < D
        x_tile = tl.load(x_ptr + x_rows + ds[None, :], mask=row_mask[:, None] & in_d[None, :], other=0.0)
        w_tile = tl.load(w_ptr + w_rows + ds[None, :], mask=col_mask[:, None] & in_d[None, :], other=0.0)
        z += tl.dot(x_tile, tl.trans(w_tile))
    return z


@triton.jit
def _accumulate_tile_grads(grad, x_ptr, w_ptr, dx_ptr, dw_ptr, rows, cols, row_mask, col_mask, D,
                           stride_x, stride_w, BLOCK_D: tl.constexpr):
    """For a gradient tile g = dL/dz of z = x w^T: dx[rows] += g @ w[cols], dw[cols] += g^T @ x[rows].

    fp32 atomics into (N, D) and (M, D) buffers: tiles of other programs add to the same rows. Relaxed: the
    sums need no ordering, and a relaxed add whose result is unused compiles to ``red`` (no round trip),
    where Triton's default acquire-release compiles to ``atom`` with fences.
    """
    grad = grad.to(x_ptr.dtype.element_ty)  # matmuls in the input dtype, accumulated in fp32
    rows64, cols64 = rows.to(tl.int64)[:, None], cols.to(tl.int64)[:, None]
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        in_d = ds < D
        w_tile = tl.load(w_ptr + cols64 * stride_w + ds[None, :], mask=col_mask[:, None] & in_d[None, :], other=0.0)
        x_tile = tl.load(x_ptr + rows64 * stride_x + ds[None, :], mask=row_mask[:, None] & in_d[None, :], other=0.0)
        tl.atomic_add(dx_ptr + rows64 * D + ds[None, :], tl.dot(grad, w_tile), mask=row_mask[:, None] & in_d[None, :],
                      sem="relaxed")
        tl.atomic_add(dw_ptr + cols64 * D + ds[None, :], tl.dot(tl.trans(grad), x_tile),
                      mask=col_mask[:, None] & in_d[None, :], sem="relaxed")
