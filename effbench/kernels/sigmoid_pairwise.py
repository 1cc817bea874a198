"""Tiled SigLIP pairwise sigmoid loss (the ``triton`` implementation of loss/sigmoid_pairwise).

With logits l_ij = T a_i . t_j + beta (T = exp(t')) and z_ij = +1 on the diagonal, -1 off it:

- forward: one program per (row block, column block) recomputes its tile and writes the
  tile's sum of softplus(-z l) into a partial-sum buffer (no b x b tensor);
- backward: the same tile gives g = dL/dl = -z sigmoid(-z l) / b; da, dt accumulate
  T g @ t_tile and T g^T @ a_tile with fp32 atomics, and each program writes its partial
  sums of g * (a . t) * T (for t') and of g (for beta).

Both autotuned over ``TILE_CONFIGS`` on (B, D) unless blocks are given. The partial-sum buffers have a
slot per tile of the config with most tiles, zeroed before every trial (a larger tile writes fewer
slots), as are da and dt (atomics add into them).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec
from effbench.kernels._tiles import (
    TILE_CONFIGS,
    _accumulate_tile_grads,
    _logit_tile,
    most_tiles,
    tile_grid,
    tile_launch,
)
from effbench.kernels._tune import autotune


@triton.jit
def _sigmoid_tile(a_ptr, t_ptr, temp, bias, rows, cols, row_mask, col_mask, D, stride_a, stride_t,
                  BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr):
    dots = _logit_tile(a_ptr, t_ptr, rows, cols, row_mask, col_mask, D, stride_a, stride_t,
                       BLOCK_N, BLOCK_V, BLOCK_D)
    sign = tl.where(rows[:, None] == cols[None, :], 1.0, -1.0)
    return dots, sign, sign * (temp * dots + bias)  # z * l


@autotune(TILE_CONFIGS, key=["B", "D"], reset_to_zero=["partial_ptr"])
@triton.jit
def _sigmoid_fwd_kernel(
    a_ptr, t_ptr, partial_ptr, B, D, stride_a, stride_t, temp, bias,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    row_mask = rows < B
    col_mask = cols < B
    dots, sign, zl = _sigmoid_tile(a_ptr, t_ptr, temp, bias, rows, cols, row_mask, col_mask, D, stride_a,
                                   stride_t, BLOCK_N, BLOCK_V, BLOCK_D)
    # -log sigmoid(zl) = softplus(-zl), in its overflow-free form
    loss = tl.maximum(-zl, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(zl)))
    loss = tl.where(row_mask[:, None] & col_mask[None, :], loss, 0.0)
    tl.store(partial_ptr + tl.program_id(0) * tl.num_programs(1) + tl.program_id(1), tl.sum(tl.sum(loss, 1), 0))


@autotune(TILE_CONFIGS, key=["B", "D"], reset_to_zero=["da_ptr", "dt_ptr", "dtemp_partial_ptr", "dbias_partial_ptr"])
@triton.jit
def _sigmoid_bwd_kernel(
    a_ptr, t_ptr, da_ptr, dt_ptr, dtemp_partial_ptr, dbias_partial_ptr, B, D, stride_a, stride_t, temp, bias,
    grad_scale,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    row_mask = rows < B
    col_mask = cols < B
    dots, sign, zl = _sigmoid_tile(a_ptr, t_ptr, temp, bias, rows, cols, row_mask, col_mask, D, stride_a,
                                   stride_t, BLOCK_N, BLOCK_V, BLOCK_D)
    grad = -sign * tl.sigmoid(-zl) * grad_scale  # dL/dl_ij
    grad = tl.where(row_mask[:, None] & col_mask[None, :], grad, 0.0)
    program = tl.program_id(0) * tl.num_programs(1) + tl.program_id(1)
    tl.store(dtemp_partial_ptr + program, tl.sum(tl.sum(grad * dots, 1), 0) * temp)  # dl/dt' = T a.t
    tl.store(dbias_partial_ptr + program, tl.sum(tl.sum(grad, 1), 0))
    _accumulate_tile_grads(grad * temp, a_ptr, t_ptr, da_ptr, dt_ptr, rows, cols, row_mask, col_mask, D,
                           stride_a, stride_t, BLOCK_D)


class SigmoidPairwiseFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, t: torch.Tensor, log_temp: torch.Tensor, bias: torch.Tensor,
                blocks: dict[str, int] | None) -> torch.Tensor:
        require_device(a, t)
        a, t = a.contiguous(), t.contiguous()
        b, d = a.shape
        kernel, constexprs = tile_launch(_sigmoid_fwd_kernel, blocks)
        partial = torch.zeros(most_tiles(b, b, constexprs), dtype=torch.float32, device=a.device)
        temp, beta = float(log_temp.exp()), float(bias)
        kernel[tile_grid(b, b)](
            a, t, partial, b, d, a.stride(0), t.stride(0), temp, beta, **constexprs)
        ctx.save_for_backward(a, t, log_temp, bias)
        ctx.blocks = blocks
        return (partial.sum() / b).to(a.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, t, log_temp, bias = ctx.saved_tensors
        b, d = a.shape
        kernel, constexprs = tile_launch(_sigmoid_bwd_kernel, ctx.blocks)
        da = torch.zeros(b, d, dtype=torch.float32, device=a.device)
        dt = torch.zeros(b, d, dtype=torch.float32, device=a.device)
        dtemp = torch.zeros(most_tiles(b, b, constexprs), dtype=torch.float32, device=a.device)
        dbias = torch.zeros_like(dtemp)
        kernel[tile_grid(b, b)](
            a, t, da, dt, dtemp, dbias, b, d, a.stride(0), t.stride(0), float(log_temp.exp()), float(bias),
            float(grad_loss) / b, **constexprs,
        )
        return (da.to(a.dtype), dt.to(t.dtype), dtemp.sum().to(log_temp.dtype).reshape(log_temp.shape),
                dbias.sum().to(bias.dtype).reshape(bias.shape), None)


def sigmoid_pairwise_loss(a: torch.Tensor, t: torch.Tensor, log_temp: torch.Tensor, bias: torch.Tensor,
                          **blocks: int) -> torch.Tensor:
    """Blocks autotuned unless ``blocks`` names all of block_n, block_v, block_d."""
    return SigmoidPairwiseFunction.apply(a, t, log_temp, bias, blocks or None)


def compile_specs() -> list[CompileSpec]:
    """The gpu grid's launches (loss/sigmoid_pairwise): bf16 at every autotune config; b and d multiples of 16."""
    constexprs: dict[str, int] = {}
    sizes = ("B", "D", "stride_a", "stride_t")
    return [
        CompileSpec(_sigmoid_fwd_kernel, "bfloat16", constexprs, pointers={"partial_ptr": "fp32"},
                    floats=("temp", "bias"), divisible=sizes),
        CompileSpec(_sigmoid_bwd_kernel, "bfloat16", constexprs, divisible=sizes,
                    pointers={"da_ptr": "fp32", "dt_ptr": "fp32", "dtemp_partial_ptr": "fp32",
                              "dbias_partial_ptr": "fp32"},
                    floats=("temp", "bias", "grad_scale")),
    ]
