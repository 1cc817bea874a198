"""Fused AdamP steps (the ``triton`` implementation of optimizer/step adamp).

A matrix takes two passes, because whether to project depends on row sums of the new update:
  1. ``_moments_kernel``, on (rows, columns) tiles of the channel view: updates m, v in fp32 registers,
     forms the Adam direction d and writes per-tile partial row sums <g, p>, ||g||^2, ||p||^2, <p, d> (a partial
     buffer, summed by torch: deterministic, no atomics);
  2. the decision (cosines, channel then layer view) is a handful of torch ops on the (rows, 4) sums,
     kept on the device so nothing waits for the host;
  3. ``_apply_kernel`` recomputes d from the stored m, v (same traffic as storing d, no scratch tensor) and
     writes p <- p * decay - step_size * (d - c_row * p).
Vectors (never projected) take one fused pass, ``_vector_kernel``. State stays in the parameter dtype;
pass 1 rounds m, v to it before forming d, so both passes see the same update.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec
from effbench.kernels.optimizer_step import (
    GPU_DTYPES,
    adam_moments,
    block_slice,
    elementwise_autotune,
    load_f32,
    store_as,
    tiles,
)

BLOCK = 1024
# optimizer/step's gpu matrices (transformer_shapes at d_model 768 and 2048) have 768 to 8192 columns: every
# one tiles as _tile_shape(rows, cols) = (1, BLOCK); tests/test_kernelcheck.py checks each shape.
GPU_TILES = ((1, BLOCK),)
# The matrix passes' tile follows the matrix's shape (rows of a channel view, _tile_shape) and is not autotuned;
# the vector step is element-wise and is (optimizer_step.ELEMENTWISE_CONFIGS).


@triton.jit
def _direction(m, v, g, beta1, eps, bias2, NESTEROV: tl.constexpr):
    """Adam direction without the 1 / (1 - b1^t) factor, which is folded into the step size."""
    if NESTEROV:
        m = beta1 * m + (1.0 - beta1) * g
    return m / (tl.sqrt(v / bias2) + eps)


@triton.jit
def _tile(rows, cols, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """Offsets and mask of this program's (BLOCK_R, BLOCK_C) tile of the (rows, cols) channel view."""
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    return r, r[:, None] * cols + c[None, :], (r[:, None] < rows) & (c[None, :] < cols)


@triton.jit
def _moments_kernel(p_ptr, g_ptr, m_ptr, v_ptr, partial_ptr, rows, cols, beta1, beta2, eps, bias2,
                    NESTEROV: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    r, offs, mask = _tile(rows, cols, BLOCK_R, BLOCK_C)
    p = load_f32(p_ptr, offs, mask)
    g = load_f32(g_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    v = load_f32(v_ptr, offs, mask)
    m = (beta1 * m + (1.0 - beta1) * g).to(m_ptr.dtype.element_ty)
    v = (beta2 * v + (1.0 - beta2) * g * g).to(v_ptr.dtype.element_ty)
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    d = _direction(m.to(tl.float32), v.to(tl.float32), g, beta1, eps, bias2, NESTEROV)
    d = tl.where(mask, d, 0.0)
    # partial[row, column block, :], one slot per program: summed by the launcher, so no atomics
    out = partial_ptr + (r * tl.num_programs(1) + tl.program_id(1)) * 4
    row_ok = r < rows
    tl.store(out, tl.sum(g * p, axis=1), mask=row_ok)
    tl.store(out + 1, tl.sum(g * g, axis=1), mask=row_ok)
    tl.store(out + 2, tl.sum(p * p, axis=1), mask=row_ok)
    tl.store(out + 3, tl.sum(p * d, axis=1), mask=row_ok)


@triton.jit
def _apply_kernel(p_ptr, g_ptr, m_ptr, v_ptr, c_ptr, decay_ptr, rows, cols, step_size, beta1, eps, bias2,
                  NESTEROV: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    r, offs, mask = _tile(rows, cols, BLOCK_R, BLOCK_C)
    p = load_f32(p_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    v = load_f32(v_ptr, offs, mask)
    g = m  # only read by the Nesterov direction
    if NESTEROV:
        g = load_f32(g_ptr, offs, mask)
    d = _direction(m, v, g, beta1, eps, bias2, NESTEROV)
    c = tl.load(c_ptr + r, mask=r < rows, other=0.0).to(tl.float32)  # 0 unless the row's radial part goes
    decay = tl.load(decay_ptr).to(tl.float32)  # 1 - lr wd (times wd_ratio when projected)
    p = p * decay - step_size * (d - c[:, None] * p)
    store_as(p_ptr, offs, p, mask)


@elementwise_autotune("p_ptr", "m_ptr", "v_ptr")
@triton.jit
def _vector_kernel(p_ptr, g_ptr, m_ptr, v_ptr, n, beta1, beta2, eps, decay, step_size, bias2,
                   NESTEROV: tl.constexpr, BLOCK: tl.constexpr):
    offs, mask = block_slice(n, BLOCK)
    p = load_f32(p_ptr, offs, mask)
    g = load_f32(g_ptr, offs, mask)
    m = load_f32(m_ptr, offs, mask)
    v = load_f32(v_ptr, offs, mask)
    m, v = adam_moments(m, v, g, beta1, beta2)
    p = p * decay - step_size * _direction(m, v, g, beta1, eps, bias2, NESTEROV)
    store_as(p_ptr, offs, p, mask)
    store_as(m_ptr, offs, m, mask)
    store_as(v_ptr, offs, v, mask)


def _flat(t: torch.Tensor) -> torch.Tensor:
    assert t.is_contiguous(), "fused steps need contiguous tensors"
    return t.view(-1)


def _tile_shape(rows: int, cols: int) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_C) of a (rows, cols) channel view: ~BLOCK-element tiles, several short rows each."""
    block_c = min(BLOCK, triton.next_power_of_2(cols))
    return min(BLOCK // block_c, triton.next_power_of_2(rows)), block_c


def _tiles(p: torch.Tensor) -> tuple[int, int, int, int, tuple[int, int]]:
    """(rows, cols, BLOCK_R, BLOCK_C, grid) of the channel view."""
    rows = p.shape[0]
    cols = p.numel() // rows
    block_r, block_c = _tile_shape(rows, cols)
    return rows, cols, block_r, block_c, (triton.cdiv(rows, block_r), triton.cdiv(cols, block_c))


def adamp_moments(p: torch.Tensor, m: torch.Tensor, v: torch.Tensor, beta1: float, beta2: float, eps: float,
                  bias2: float, nesterov: bool) -> torch.Tensor:
    """Pass 1 on a matrix: update m, v in place; return its (rows, 4) fp32 row sums <g,p>, |g|^2, |p|^2, <p,d>."""
    require_device(p)
    rows, cols, block_r, block_c, grid = _tiles(p)
    partial = torch.empty((rows, grid[1], 4), device=p.device, dtype=torch.float32)
    _moments_kernel[grid](
        _flat(p.data), _flat(p.grad), _flat(m), _flat(v), partial, rows, cols, beta1, beta2, eps, bias2,
        NESTEROV=nesterov, BLOCK_R=block_r, BLOCK_C=block_c,
    )
    return partial.sum(dim=1)


def adamp_apply(p: torch.Tensor, m: torch.Tensor, v: torch.Tensor, c: torch.Tensor, decay: torch.Tensor,
                step_size: float, beta1: float, eps: float, bias2: float, nesterov: bool) -> None:
    """Pass 2 on a matrix: p <- p * decay - step_size * (d - c_row p), with c (rows,) and decay (1,) on the device."""
    rows, cols, block_r, block_c, grid = _tiles(p)
    _apply_kernel[grid](
        _flat(p.data), _flat(p.grad), _flat(m), _flat(v), c.contiguous(), decay, rows, cols, step_size, beta1, eps,
        bias2, NESTEROV=nesterov, BLOCK_R=block_r, BLOCK_C=block_c,
    )


def adamp_vector_step(p: torch.Tensor, m: torch.Tensor, v: torch.Tensor, lr: float, beta1: float, beta2: float,
                      eps: float, weight_decay: float, bias1: float, bias2: float, nesterov: bool) -> None:
    """A whole step on a vector (never projected): one fused pass, AdamW-like."""
    require_device(p)
    n = p.numel()
    _vector_kernel[tiles(n)](
        _flat(p.data), _flat(p.grad), _flat(m), _flat(v), n, beta1, beta2, eps, 1 - lr * weight_decay, lr / bias1,
        bias2, NESTEROV=nesterov,
    )


def compile_specs() -> list[CompileSpec]:
    """Both matrix passes at each gpu tile shape, and the vector step, at every gpu-grid dtype; without Nesterov
    (the method's default, the only setting the grids run)."""
    specs = []
    for dtype in GPU_DTYPES:
        for block_r, block_c in GPU_TILES:
            tile = {"NESTEROV": False, "BLOCK_R": block_r, "BLOCK_C": block_c}
            specs += [
                CompileSpec(_moments_kernel, dtype, tile, pointers={"partial_ptr": "fp32"},
                            floats=("beta1", "beta2", "eps", "bias2"), divisible=("rows", "cols")),
                CompileSpec(_apply_kernel, dtype, tile, pointers={"c_ptr": "fp32", "decay_ptr": "fp32"},
                            floats=("step_size", "beta1", "eps", "bias2"), divisible=("rows", "cols")),
            ]
        specs.append(CompileSpec(_vector_kernel, dtype, {"NESTEROV": False, "BLOCK": BLOCK}, divisible=("n",),
                                 floats=("beta1", "beta2", "eps", "decay", "step_size", "bias2")))
    return specs
