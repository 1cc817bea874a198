"""Tile helpers shared by the kernels (``@triton.jit`` device functions).

Element offsets are int64: a row index times a stride passes 2^31 once V x D does (V = 256000 at D = 8448,
N x D at N = 262144 tokens of D = 8192), and int32 arithmetic would wrap to another row silently."""

import triton
import triton.language as tl


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
