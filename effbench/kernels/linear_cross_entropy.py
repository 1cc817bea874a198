"""Linear cross-entropy without N x V logits in global memory (``triton_linear_ce``).

In the manner of Cut Cross-Entropy (Wijmans et al., arXiv:2411.09009):

- forward: one program per block of BLOCK_N rows walks the vocabulary in BLOCK_V
  columns; each (BLOCK_N, BLOCK_V) logit tile is computed in registers from x and w
  (a K-loop over D with ``tl.dot``, fp32 accumulation) and folded into an online
  log-sum-exp, the target logit and the logit sum. Only three N-vectors are written.
- backward: one program per (row block, vocabulary block) recomputes its logit tile,
  turns it into the loss gradient

      g = softmax (1 + 2 lambda lse) - (1 - eps) onehot(y) - eps / V,  scaled per row

  and adds g @ w_tile into dx and g^T @ x_tile into dw with fp32 atomics.

Loss per row: lse - (1 - eps) z_y - (eps / V) sum_v z_v + lambda lse^2 (z-loss lambda,
label smoothing eps), averaged over non-ignored rows.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec
from effbench.kernels._tiles import _accumulate_tile_grads, _logit_tile


@triton.jit
def _linear_ce_fwd_kernel(
    x_ptr, w_ptr, targets_ptr, lse_ptr, target_logit_ptr, logit_sum_ptr,
    N, V, D, stride_x, stride_w,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    targets = tl.load(targets_ptr + rows, mask=row_mask, other=-1)
    running_max = tl.zeros([BLOCK_N], dtype=tl.float32) - float("inf")
    running_sum = tl.zeros([BLOCK_N], dtype=tl.float32)
    target_logit = tl.zeros([BLOCK_N], dtype=tl.float32)
    logit_sum = tl.zeros([BLOCK_N], dtype=tl.float32)
    for v0 in range(0, V, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        col_mask = cols < V
        z = _logit_tile(x_ptr, w_ptr, rows, cols, row_mask, col_mask, D, stride_x, stride_w,
                        BLOCK_N, BLOCK_V, BLOCK_D)  # (BLOCK_N, BLOCK_V), never leaves registers
        z_in = tl.where(col_mask[None, :], z, -float("inf"))
        new_max = tl.maximum(running_max, tl.max(z_in, axis=1))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(z_in - new_max[:, None]), axis=1)
        running_max = new_max
        logit_sum += tl.sum(tl.where(col_mask[None, :], z, 0.0), axis=1)
        target_logit += tl.sum(tl.where(cols[None, :] == targets[:, None], z, 0.0), axis=1)
    tl.store(lse_ptr + rows, running_max + tl.log(running_sum), mask=row_mask)
    tl.store(target_logit_ptr + rows, target_logit, mask=row_mask)
    tl.store(logit_sum_ptr + rows, logit_sum, mask=row_mask)


@triton.jit
def _linear_ce_bwd_kernel(
    x_ptr, w_ptr, targets_ptr, lse_ptr, row_scale_ptr, dx_ptr, dw_ptr,
    N, V, D, stride_x, stride_w, z_loss, smoothing,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.program_id(1) * BLOCK_V + tl.arange(0, BLOCK_V)
    row_mask = rows < N
    col_mask = cols < V
    z = _logit_tile(x_ptr, w_ptr, rows, cols, row_mask, col_mask, D, stride_x, stride_w,
                    BLOCK_N, BLOCK_V, BLOCK_D)
    lse = tl.load(lse_ptr + rows, mask=row_mask, other=0.0)
    scale = tl.load(row_scale_ptr + rows, mask=row_mask, other=0.0)  # upstream grad * valid / n_valid
    targets = tl.load(targets_ptr + rows, mask=row_mask, other=-1)
    grad = tl.exp(z - lse[:, None]) * (1.0 + 2.0 * z_loss * lse[:, None]) - smoothing / V
    grad = tl.where(cols[None, :] == targets[:, None], grad - (1.0 - smoothing), grad)
    grad = tl.where(row_mask[:, None] & col_mask[None, :], grad * scale[:, None], 0.0)
    _accumulate_tile_grads(grad, x_ptr, w_ptr, dx_ptr, dw_ptr, rows, cols, row_mask, col_mask, D,
                           stride_x, stride_w, BLOCK_D)


DEFAULT_BLOCKS = {"block_n": 64, "block_v": 64, "block_d": 64}


def linear_cross_entropy_forward(
    x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, block_n: int, block_v: int, block_d: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lse, target logit, logit sum), each (N,) fp32."""
    assert x.ndim == 2 and w.ndim == 2 and x.shape[1] == w.shape[1] and y.shape == (x.shape[0],)
    require_device(x, w)
    n, d = x.shape
    v = w.shape[0]
    out = [torch.empty(n, dtype=torch.float32, device=x.device) for _ in range(3)]
    _linear_ce_fwd_kernel[(triton.cdiv(n, block_n),)](
        x, w, y, *out, n, v, d, x.stride(0), w.stride(0), BLOCK_N=block_n, BLOCK_V=block_v, BLOCK_D=block_d,
    )
    return out[0], out[1], out[2]


def linear_cross_entropy_backward(
    x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, lse: torch.Tensor, row_scale: torch.Tensor,
    z_loss: float, label_smoothing: float, block_n: int, block_v: int, block_d: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    n, d = x.shape
    v = w.shape[0]
    dx = torch.zeros(n, d, dtype=torch.float32, device=x.device)
    dw = torch.zeros(v, d, dtype=torch.float32, device=x.device)
    _linear_ce_bwd_kernel[(triton.cdiv(n, block_n), triton.cdiv(v, block_v))](
        x, w, y, lse, row_scale, dx, dw, n, v, d, x.stride(0), w.stride(0), float(z_loss), float(label_smoothing),
        BLOCK_N=block_n, BLOCK_V=block_v, BLOCK_D=block_d,
    )
    return dx.to(x.dtype), dw.to(w.dtype)


def row_logsumexp(x: torch.Tensor, w: torch.Tensor, block_n: int = 64, block_v: int = 64,
                  block_d: int = 64) -> torch.Tensor:
    """logsumexp_j (x_i . w_j) for every row i, (N,) fp32, without the N x M matrix (no targets)."""
    no_targets = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    return linear_cross_entropy_forward(x.contiguous(), w.contiguous(), no_targets, block_n, block_v, block_d)[0]


class LinearCrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int, z_loss: float,
                label_smoothing: float, blocks: dict[str, int]) -> torch.Tensor:
        x, w, y = x.contiguous(), w.contiguous(), y.contiguous()
        lse, target_logit, logit_sum = linear_cross_entropy_forward(x, w, y, **blocks)
        valid = y != ignore_index
        n_valid = valid.sum()
        rows = lse - (1 - label_smoothing) * target_logit - label_smoothing / w.shape[0] * logit_sum
        rows = rows + z_loss * lse * lse
        loss = torch.where(valid, rows, 0).sum() / n_valid
        ctx.save_for_backward(x, w, y, lse, valid, n_valid)
        ctx.options = (z_loss, label_smoothing, blocks)
        return loss.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w, y, lse, valid, n_valid = ctx.saved_tensors
        z_loss, label_smoothing, blocks = ctx.options
        row_scale = valid.to(torch.float32) * (grad_loss.to(torch.float32) / n_valid)
        dx, dw = linear_cross_entropy_backward(x, w, y, lse, row_scale, z_loss, label_smoothing, **blocks)
        return dx, dw, None, None, None, None, None


def linear_cross_entropy(
    x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
    label_smoothing: float = 0.0, **blocks: int,
) -> torch.Tensor:
    """Mean cross-entropy of x @ w.T against y; ``blocks`` overrides block_n / block_v / block_d."""
    return LinearCrossEntropyFunction.apply(x, w, y, ignore_index, z_loss, label_smoothing,
                                            {**DEFAULT_BLOCKS, **blocks})


def compile_specs() -> list[CompileSpec]:
    """The gpu grid's launches: bf16 at DEFAULT_BLOCKS (loss/linear_cross_entropy; loss/contrastive runs the
    forward through row_logsumexp), every N, V, D and stride a multiple of 16."""
    constexprs = {"BLOCK_N": DEFAULT_BLOCKS["block_n"], "BLOCK_V": DEFAULT_BLOCKS["block_v"],
                  "BLOCK_D": DEFAULT_BLOCKS["block_d"]}
    sizes = ("N", "V", "D", "stride_x", "stride_w")
    return [
        CompileSpec(_linear_ce_fwd_kernel, "bfloat16", constexprs, divisible=sizes,
                    pointers={"targets_ptr": "i64", "lse_ptr": "fp32", "target_logit_ptr": "fp32",
                              "logit_sum_ptr": "fp32"}),
        CompileSpec(_linear_ce_bwd_kernel, "bfloat16", constexprs, divisible=sizes, floats=("z_loss", "smoothing"),
                    pointers={"targets_ptr": "i64", "lse_ptr": "fp32", "row_scale_ptr": "fp32", "dx_ptr": "fp32",
                              "dw_ptr": "fp32"}),
    ]
