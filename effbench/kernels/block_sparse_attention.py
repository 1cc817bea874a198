"""Block-sparse flash attention driven by a ``BlockLayout`` (``block_sparse_attention``).

FlashAttention-2 (Dao, arXiv:2307.08691) restricted to the tiles a mask allows: the
(N, N) mask is cut into BLOCK x BLOCK tiles (``effbench.kernels._blocks``)
and each program walks only the non-empty tiles of its row (or column) of tiles, so
an empty tile costs nothing and no N x N tensor exists. Full tiles need no element
mask; partial tiles load their (BLOCK, BLOCK) mask from a compact table.

With s = q k^T / sqrt(d) (masked entries -inf), p = softmax(s), o = p v:

- forward, one program per (q block, batch * head): the online softmax over the q
  block's LUT entries, with a running row max m, row sum l and fp32 accumulator acc:

      m' = max(m, rowmax s);  l = l 2^(m - m') + rowsum 2^(s - m');  acc = acc 2^(m - m') + 2^(s - m') v

  (scores kept in base 2: s2 = s log2 e); writes o = acc / l and lse2 = m + log2 l per row.
- backward, with delta = rowsum(dO * o) (one small pass), p = 2^(s2 - lse2) recomputed
  per tile and ds = p (dO v^T - delta):
  dK/dV, one program per kv block over the transposed LUT (q blocks of the kv block):
  dv = sum p^T dO, dk = sum ds^T q / sqrt(d); dQ, one program per q block over the
  forward LUT: dq = sum ds k / sqrt(d). No atomics: each program owns its output rows.

Stored between passes: o and lse (B, H, N) fp32. Rows with no allowed key give output 0
and gradients 0 (the reference gives NaN there: softmax of all -inf; the task's patterns
always allow the diagonal, so they never have such rows).

Inputs fp16 / bf16 / fp32 on a GPU (matmuls in the input dtype, fp32 accumulation and
softmax; fp32 matmuls in IEEE fp32, not tf32); fp32 only in the CPU interpreter.
Head dim d in {16, 32, 64, 128}; BLOCK a power of two >= 16.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import triton
import triton.language as tl

from effbench.kernels._blocks import BlockLayout, layout_for
from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec, python_function
from effbench.kernels._tune import autotune
from effbench.registry import Unavailable

HEAD_DIMS = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
DEFAULT_BLOCK = 64
# What the gpu grid launches (attention/masked_attention): bf16; head dims 64 and 128; the point's block (128)
# where it sets one, else default_block(N) = DEFAULT_BLOCK (every gpu N >= 1024). compile_specs() builds on
# these; tests/test_kernelcheck.py checks them against the grid.
GPU_DTYPES = ("bfloat16",)
GPU_HEAD_DIMS = (64, 128)
GPU_BLOCKS = (DEFAULT_BLOCK, 128)


@triton.jit
def _allowed(partial_ptr, tile, rows, cols, N, BLOCK: tl.constexpr):
    """Pairs of a tile that may attend: in range, and in its element mask when it is partial (tile >= 0)."""
    allowed = (rows[:, None] < N) & (cols[None, :] < N)
    if tile >= 0:
        r = tl.arange(0, BLOCK)
        elems = tl.load(partial_ptr + tile.to(tl.int64) * (BLOCK * BLOCK) + r[:, None] * BLOCK + r[None, :])
        allowed = allowed & (elems != 0)
    return allowed


@triton.jit
def _load_rows(ptr, base, rows, N, D: tl.constexpr):
    dims = tl.arange(0, D)
    return tl.load(ptr + base + rows[:, None] * D + dims[None, :], mask=rows[:, None] < N, other=0.0)


@triton.jit
def _store_rows(ptr, base, rows, N, x, D: tl.constexpr):
    dims = tl.arange(0, D)
    tl.store(ptr + base + rows[:, None] * D + dims[None, :], x.to(ptr.dtype.element_ty), mask=rows[:, None] < N)


@triton.jit
def _fwd_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, counts_ptr, lut_ptr, lut_tile_ptr, partial_ptr,
    H, N, T, W, mask_sb, mask_sh, qk_scale,
    BLOCK: tl.constexpr, D: tl.constexpr, PRECISION: tl.constexpr,
):
    qb, bh = tl.program_id(0), tl.program_id(1)
    g = (bh // H) * mask_sb + (bh % H) * mask_sh  # mask head of this (batch, head)
    base = bh.to(tl.int64) * N * D
    rows = qb * BLOCK + tl.arange(0, BLOCK)
    q = _load_rows(q_ptr, base, rows, N, D)
    row_max = tl.full([BLOCK], float("-inf"), tl.float32)  # running row max of s2
    row_sum = tl.zeros([BLOCK], dtype=tl.float32)  # running row sum of 2^(s2 - row_max)
    acc = tl.zeros([BLOCK, D], dtype=tl.float32)  # running sum of 2^(s2 - row_max) v
    entry = (g * T + qb).to(tl.int64)
    for e in range(0, tl.load(counts_ptr + entry)):
        kb = tl.load(lut_ptr + entry * W + e)
        tile = tl.load(lut_tile_ptr + entry * W + e)
        cols = kb * BLOCK + tl.arange(0, BLOCK)
        k = _load_rows(k_ptr, base, cols, N, D)
        v = _load_rows(v_ptr, base, cols, N, D)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # s2 = s log2 e
        s = tl.where(_allowed(partial_ptr, tile, rows, cols, N, BLOCK), s, float("-inf"))
        m_new = tl.maximum(row_max, tl.max(s, axis=1))
        m_ref = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no allowed key yet: avoid -inf - -inf
        alpha = tl.exp2(row_max - m_ref)
        p = tl.exp2(s - m_ref[:, None])
        row_sum = row_sum * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        row_max = m_new
    has_keys = row_sum > 0
    sum_safe = tl.where(has_keys, row_sum, 1.0)
    _store_rows(o_ptr, base, rows, N, acc / sum_safe[:, None], D)  # acc = 0 for rows with no allowed key
    lse = tl.where(has_keys, row_max + tl.log2(sum_safe), float("inf"))  # +inf: p = 2^(s2 - lse2) = 0 in the backward
    tl.store(lse_ptr + bh.to(tl.int64) * N + rows, lse, mask=rows < N)


@triton.jit
def _delta_kernel(o_ptr, do_ptr, delta_ptr, N, BLOCK: tl.constexpr, D: tl.constexpr):
    """delta = rowsum(dO * o), fp32."""
    qb, bh = tl.program_id(0), tl.program_id(1)
    base = bh.to(tl.int64) * N * D
    rows = qb * BLOCK + tl.arange(0, BLOCK)
    o = _load_rows(o_ptr, base, rows, N, D).to(tl.float32)
    do = _load_rows(do_ptr, base, rows, N, D).to(tl.float32)
    tl.store(delta_ptr + bh.to(tl.int64) * N + rows, tl.sum(o * do, axis=1), mask=rows < N)


@triton.jit
def _tile_grads(q, k, v, do, lse, delta, partial_ptr, tile, rows, cols, N, qk_scale,
                BLOCK: tl.constexpr, PRECISION: tl.constexpr):
    """(p, ds) of one tile: p = 2^(s2 - lse2) (0 where masked), ds = p (dO v^T - delta)."""
    s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
    p = tl.where(_allowed(partial_ptr, tile, rows, cols, N, BLOCK), tl.exp2(s - lse[:, None]), 0.0)
    dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
    return p, p * (dp - delta[:, None])


@triton.jit
def _bwd_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
    t_counts_ptr, t_lut_ptr, t_lut_tile_ptr, partial_ptr,
    H, N, T, WT, mask_sb, mask_sh, qk_scale, sm_scale,
    BLOCK: tl.constexpr, D: tl.constexpr, PRECISION: tl.constexpr,
):
    kb, bh = tl.program_id(0), tl.program_id(1)
    g = (bh // H) * mask_sb + (bh % H) * mask_sh
    base = bh.to(tl.int64) * N * D
    row_base = bh.to(tl.int64) * N
    cols = kb * BLOCK + tl.arange(0, BLOCK)
    k = _load_rows(k_ptr, base, cols, N, D)
    v = _load_rows(v_ptr, base, cols, N, D)
    dk = tl.zeros([BLOCK, D], dtype=tl.float32)
    dv = tl.zeros([BLOCK, D], dtype=tl.float32)
    entry = (g * T + kb).to(tl.int64)
    for e in range(0, tl.load(t_counts_ptr + entry)):  # q blocks that attend this kv block
        qb = tl.load(t_lut_ptr + entry * WT + e)
        tile = tl.load(t_lut_tile_ptr + entry * WT + e)
        rows = qb * BLOCK + tl.arange(0, BLOCK)
        q = _load_rows(q_ptr, base, rows, N, D)
        do = _load_rows(do_ptr, base, rows, N, D)
        lse = tl.load(lse_ptr + row_base + rows, mask=rows < N, other=0.0)
        delta = tl.load(delta_ptr + row_base + rows, mask=rows < N, other=0.0)
        p, ds = _tile_grads(q, k, v, do, lse, delta, partial_ptr, tile, rows, cols, N, qk_scale, BLOCK, PRECISION)
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)  # dv = p^T dO
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)  # dk = ds^T q (scaled below)
    _store_rows(dk_ptr, base, cols, N, dk * sm_scale, D)
    _store_rows(dv_ptr, base, cols, N, dv, D)


@triton.jit
def _bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
    counts_ptr, lut_ptr, lut_tile_ptr, partial_ptr,
    H, N, T, W, mask_sb, mask_sh, qk_scale, sm_scale,
    BLOCK: tl.constexpr, D: tl.constexpr, PRECISION: tl.constexpr,
):
    qb, bh = tl.program_id(0), tl.program_id(1)
    g = (bh // H) * mask_sb + (bh % H) * mask_sh
    base = bh.to(tl.int64) * N * D
    row_base = bh.to(tl.int64) * N
    rows = qb * BLOCK + tl.arange(0, BLOCK)
    q = _load_rows(q_ptr, base, rows, N, D)
    do = _load_rows(do_ptr, base, rows, N, D)
    lse = tl.load(lse_ptr + row_base + rows, mask=rows < N, other=0.0)
    delta = tl.load(delta_ptr + row_base + rows, mask=rows < N, other=0.0)
    dq = tl.zeros([BLOCK, D], dtype=tl.float32)
    entry = (g * T + qb).to(tl.int64)
    for e in range(0, tl.load(counts_ptr + entry)):
        kb = tl.load(lut_ptr + entry * W + e)
        tile = tl.load(lut_tile_ptr + entry * W + e)
        cols = kb * BLOCK + tl.arange(0, BLOCK)
        k = _load_rows(k_ptr, base, cols, N, D)
        v = _load_rows(v_ptr, base, cols, N, D)
        _, ds = _tile_grads(q, k, v, do, lse, delta, partial_ptr, tile, rows, cols, N, qk_scale, BLOCK, PRECISION)
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)  # dq = ds k (scaled below)
    _store_rows(dq_ptr, base, rows, N, dq * sm_scale, D)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: BlockLayout) -> None:
    if q.ndim != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must share one (B, H, N, d) shape; got {q.shape}, {k.shape}, {v.shape}")
    if not q.dtype == k.dtype == v.dtype or q.dtype not in DTYPES:
        raise Unavailable(f"block-sparse attention takes one of {DTYPES}; got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[-1] not in HEAD_DIMS:
        raise Unavailable(f"block-sparse attention supports head dims {HEAD_DIMS}; got {q.shape[-1]}")
    if layout.n != q.shape[2]:
        raise ValueError(f"the layout is for N = {layout.n}, the inputs have N = {q.shape[2]}")
    require_device(q, k, v)


def _launch_options(dtype: torch.dtype, d: int, block: int) -> dict[str, Any]:
    """Constexprs of the forward, dK/dV and dQ kernels; their warps and stages come from ``_tune_space``."""
    return {"BLOCK": block, "D": d, "PRECISION": "ieee" if dtype == torch.float32 else "tf32"}


def _tune_space(d: int, block: int) -> list[tuple[int, int]]:
    """(num_warps, num_stages) the autotuner times for a (head dim, block); ``compile_specs`` compiles each.

    Block 128 tiles hold 4x a block-64 tile's scores per program: with 4 warps ptxas spilled (sm_90, head dim 64:
    448 B forward, 1208 B dK/dV, 488 B dQ; sm_80 fell back to 32 registers and 5-20 KB), so they get 8 warps and
    no software pipelining (a second stage's buffers cost registers too). Compiled by ``effbench kernels``
    (Triton 3.9): forward and dQ then spill nothing on sm_90, dK/dV 8 B (head dim 64) and 376 B (128), whose
    two fp32 accumulators (dK, dV: 2 x 128 x d) alone take half the register file; 16 warps or two stages
    spill more. On sm_80 (no wgmma) 176-2344 B remain. Block 64: 4 or 8 warps, 2 or 3 stages, none of which
    spills on sm_90, but 4 warps at head dim 128 (dK/dV: 256-272 B), left out."""
    if block >= 128:
        return [(8, 1)]
    return [(warps, stages) for warps in ((4, 8) if d <= 64 else (8,)) for stages in (2, 3)]


_TUNED: dict[tuple[str, int, int], Any] = {}


def _tuned(fn: Any, d: int, block: int) -> Any:
    """``fn`` autotuned over ``_tune_space(d, block)``, keyed on N and the LUT's width (how sparse the mask is)."""
    key = (python_function(fn).__name__, d, block)
    if key not in _TUNED:
        width = "WT" if "WT" in fn.arg_names else "W"
        configs = [triton.Config({}, num_warps=w, num_stages=s) for w, s in _tune_space(d, block)]
        _TUNED[key] = autotune(configs, key=["N", width])(fn)
    return _TUNED[key]


def _scales(d: int) -> tuple[float, float]:
    sm_scale = d**-0.5
    return sm_scale * math.log2(math.e), sm_scale  # (scores to base 2, plain)


def block_sparse_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         layout: BlockLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """(o, lse2): o like q, lse2 (B, H, N) fp32 in base 2 (+inf for rows with no allowed key)."""
    _check(q, k, v, layout)
    b, h, n, d = q.shape
    sb, sh = layout.group_strides(b, h)
    o = torch.empty_like(q)
    lse = torch.empty(b, h, n, dtype=torch.float32, device=q.device)
    qk_scale, _ = _scales(d)
    _tuned(_fwd_kernel, d, layout.block)[(layout.num_blocks, b * h)](
        q, k, v, o, lse, layout.counts, layout.lut, layout.lut_tile, layout.partial,
        h, n, layout.num_blocks, layout.lut.shape[-1], sb, sh, qk_scale, **_launch_options(q.dtype, d, layout.block),
    )
    return o, lse


def block_sparse_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                          do: torch.Tensor, layout: BlockLayout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    b, h, n, d = q.shape
    sb, sh = layout.group_strides(b, h)
    t = layout.num_blocks
    options = _launch_options(q.dtype, d, layout.block)
    qk_scale, sm_scale = _scales(d)
    delta = torch.empty(b, h, n, dtype=torch.float32, device=q.device)
    _delta_kernel[(t, b * h)](o, do, delta, n, BLOCK=layout.block, D=d)
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    _tuned(_bwd_dkdv_kernel, d, layout.block)[(t, b * h)](
        q, k, v, do, lse, delta, dk, dv, layout.t_counts, layout.t_lut, layout.t_lut_tile, layout.partial,
        h, n, t, layout.t_lut.shape[-1], sb, sh, qk_scale, sm_scale, **options,
    )
    _tuned(_bwd_dq_kernel, d, layout.block)[(t, b * h)](
        q, k, v, do, lse, delta, dq, layout.counts, layout.lut, layout.lut_tile, layout.partial,
        h, n, t, layout.lut.shape[-1], sb, sh, qk_scale, sm_scale, **options,
    )
    return dq, dk, dv


class BlockSparseAttentionFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: BlockLayout) -> torch.Tensor:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        o, lse = block_sparse_forward(q, k, v, layout)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.layout = layout
        return o

    @staticmethod
    def backward(ctx: Any, do: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = block_sparse_backward(q, k, v, o, lse, do.contiguous().to(q.dtype), ctx.layout)
        return dq, dk, dv, None


def default_block(n: int) -> int:
    """DEFAULT_BLOCK, or the smallest power of two >= max(n, 16) when N is shorter."""
    return min(DEFAULT_BLOCK, max(16, triton.next_power_of_2(n)))


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                           block: int | None = None) -> torch.Tensor:
    """``reference_attention``'s contract: q, k, v (B, H, N, d); mask bool, broadcastable to (B, H, N, N).

    The mask's layout is built on first use and cached while the mask tensor lives (put the
    mask on q's device, or each call copies the layout there).
    """
    n = q.shape[2]
    block = default_block(n) if block is None else block
    if block < 16 or block & (block - 1):
        raise ValueError(f"the block must be a power of two >= 16; got {block}")
    layout = layout_for(mask, block, n)
    if layout.counts.device != q.device:
        layout = layout.to(q.device)
    return BlockSparseAttentionFunction.apply(q, k, v, layout)


# element types of the pointers that do not hold q, k, v or their gradients (see BlockLayout)
_POINTERS = {"lse_ptr": "fp32", "delta_ptr": "fp32", "counts_ptr": "i32", "lut_ptr": "i32", "lut_tile_ptr": "i32",
             "t_counts_ptr": "i32", "t_lut_ptr": "i32", "t_lut_tile_ptr": "i32", "partial_ptr": "u8"}


def _spec(fn: Any, dtype: str, constexprs: dict[str, Any], **launch: Any) -> CompileSpec:
    params = set(fn.arg_names)
    return CompileSpec(fn, dtype, constexprs, pointers={k: v for k, v in _POINTERS.items() if k in params},
                       floats=tuple(n for n in ("qk_scale", "sm_scale") if n in params), divisible=("N",), **launch)


def compile_specs() -> list[CompileSpec]:
    """The four kernels at every (dtype, head dim, block) of the gpu grid, at every config the autotuner may pick."""
    specs = []
    for dtype, d, block in itertools.product(GPU_DTYPES, GPU_HEAD_DIMS, GPU_BLOCKS):
        options = _launch_options(getattr(torch, dtype), d, block)
        for warps, stages in _tune_space(d, block):
            # the spills found are fixed where they can be (``_tune_space``): on sm_90 forward and dQ spill nothing,
            # block 64 nothing at all, block 128's dK/dV (two fp32 BLOCK x d accumulators) at most 376 B
            specs += [_spec(fn, dtype, options, num_warps=warps, num_stages=stages, spill_budget={
                "sm_90": 376 if fn is _bwd_dkdv_kernel and block == 128 else 0})
                      for fn in (_fwd_kernel, _bwd_dkdv_kernel, _bwd_dq_kernel)]
        specs.append(_spec(_delta_kernel, dtype, {"BLOCK": block, "D": d}))  # launched with Triton's defaults
    return specs
