"""Tiled symmetric InfoNCE (the ``triton`` implementation of loss/contrastive), in the manner of Inf-CL
(Cheng et al., arXiv:2410.17243): the b x b similarity matrix never reaches global memory.

- forward: the row log-sum-exps of S = s a t^T and of S^T (the column log-sum-exps) come
  from the tiled online log-sum-exp kernel of ``linear_cross_entropy`` (run on s a vs t
  and s t vs a); the diagonal is a row-wise dot product.
- backward: one program per (row block, column block) recomputes its tile of S and forms

      dL/dS_ij = (exp(S_ij - rlse_i) + exp(S_ij - clse_j) - 2 [i = j]) / (2b),

  then adds s g @ t_tile into da and s g^T @ a_tile into dt with fp32 atomics.

Forward and backward autotuned (``TILE_CONFIGS`` on (B, D); da and dt zeroed before every trial) unless
blocks are given.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec
from effbench.kernels._tiles import TILE_CONFIGS, _accumulate_tile_grads, _logit_tile, tile_grid, tile_launch
from effbench.kernels._tune import autotune
from effbench.kernels.linear_cross_entropy import row_logsumexp


@autotune(TILE_CONFIGS, key=["B", "D"], reset_to_zero=["da_ptr", "dt_ptr"])
@triton.jit
def _contrastive_bwd_kernel(
    a_ptr, t_ptr, row_lse_ptr, col_lse_ptr, da_ptr, dt_ptr,
    B, D, stride_a, stride_t, scale, grad_scale,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    row_mask = rows < B
    col_mask = cols < B
    s = scale * _logit_tile(a_ptr, t_ptr, rows, cols, row_mask, col_mask, D, stride_a, stride_t,
                            BLOCK_N, BLOCK_V, BLOCK_D)
    row_lse = tl.load(row_lse_ptr + rows, mask=row_mask, other=0.0)
    col_lse = tl.load(col_lse_ptr + cols, mask=col_mask, other=0.0)
    grad = tl.exp(s - row_lse[:, None]) + tl.exp(s - col_lse[None, :])
    grad = tl.where(rows[:, None] == cols[None, :], grad - 2.0, grad)
    # d(s a t^T)/da = s t: the scale joins the per-element factor
    grad = tl.where(row_mask[:, None] & col_mask[None, :], grad * (grad_scale * scale), 0.0)
    _accumulate_tile_grads(grad, a_ptr, t_ptr, da_ptr, dt_ptr, rows, cols, row_mask, col_mask, D,
                           stride_a, stride_t, BLOCK_D)


class ContrastiveFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, t: torch.Tensor, scale: float, blocks: dict[str, int] | None
                ) -> torch.Tensor:
        require_device(a, t)
        a, t = a.contiguous(), t.contiguous()
        row_lse = row_logsumexp(a * scale, t, blocks)
        col_lse = row_logsumexp(t * scale, a, blocks)
        diag = scale * (a.float() * t.float()).sum(-1)
        loss = 0.5 * ((row_lse - diag).mean() + (col_lse - diag).mean())
        ctx.save_for_backward(a, t, row_lse, col_lse)
        ctx.scale, ctx.blocks = scale, blocks
        return loss.to(a.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, t, row_lse, col_lse = ctx.saved_tensors
        b, d = a.shape
        kernel, constexprs = tile_launch(_contrastive_bwd_kernel, ctx.blocks)
        da = torch.zeros(b, d, dtype=torch.float32, device=a.device)
        dt = torch.zeros(b, d, dtype=torch.float32, device=a.device)
        kernel[tile_grid(b, b)](
            a, t, row_lse, col_lse, da, dt, b, d, a.stride(0), t.stride(0), float(ctx.scale),
            float(grad_loss) / (2 * b), **constexprs,
        )
        return da.to(a.dtype), dt.to(t.dtype), None, None


def contrastive_loss(a: torch.Tensor, t: torch.Tensor, scale: float, **blocks: int) -> torch.Tensor:
    """Blocks autotuned unless ``blocks`` names all of block_n, block_v, block_d (both passes)."""
    return ContrastiveFunction.apply(a, t, scale, blocks or None)


def compile_specs() -> list[CompileSpec]:
    """The gpu grid's launches (loss/contrastive): bf16 at every autotune config; b and d multiples of 16."""
    return [CompileSpec(_contrastive_bwd_kernel, "bfloat16", {},
                        pointers={"row_lse_ptr": "fp32", "col_lse_ptr": "fp32", "da_ptr": "fp32", "dt_ptr": "fp32"},
                        floats=("scale", "grad_scale"), divisible=("B", "D", "stride_a", "stride_t"))]
