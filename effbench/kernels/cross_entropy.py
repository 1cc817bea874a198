"""Fused cross-entropy over materialised logits (the ``triton_ce`` implementation).

One program per row makes two passes over the vocabulary: the first an online
max / sum-exp (the log-sum-exp ``lse``), the target logit and the logit sum; the second
writes the gradient of the row's loss straight into the logits buffer, so no second
N x V tensor is allocated. With z-loss lambda and label smoothing eps the per-row loss
and its gradient with respect to logit z_v are

    loss = lse - (1 - eps) z_y - (eps / V) sum_v z_v + lambda lse^2
    dloss/dz_v = softmax_v (1 + 2 lambda lse) - (1 - eps) [v = y] - eps / V

The gradients with respect to x and w are then two matmuls, done in the forward pass
(as Liger-Kernel does); backward only scales them by the upstream gradient.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from effbench.kernels._common import require_device
from effbench.kernels._spec import CompileSpec
from effbench.kernels._tune import autotune

BLOCK_V = 1024  # columns per step; vocabularies shorter than it use their next power of two
# Autotuned on V for vocabularies of at least BLOCK_V (every gpu-grid one): the kernel overwrites the
# logits with their gradient, so every trial restores them (an N x V copy, on the untimed first call).
CONFIGS = [
    triton.Config({"BLOCK_V": BLOCK_V}, num_warps=4),
    triton.Config({"BLOCK_V": 2048}, num_warps=8),
    triton.Config({"BLOCK_V": 4096}, num_warps=16),
]


@autotune(CONFIGS, key=["V"], restore_value=["logits_ptr"],
          prune_configs_by={"early_config_prune": lambda configs, named_args, **_: [
              c for c in configs if c.kwargs["BLOCK_V"] <= max(BLOCK_V, named_args["V"])]})
@triton.jit
def _cross_entropy_fwd_bwd_kernel(
    logits_ptr, stride_row, targets_ptr, row_scale_ptr, loss_ptr, lse_ptr,
    V, ignore_index, z_loss, smoothing,
    BLOCK_V: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    row_ptr = logits_ptr + row * stride_row
    target = tl.load(targets_ptr + row)
    running_max = tl.zeros([], dtype=tl.float32) - float("inf")
    running_sum = tl.zeros([], dtype=tl.float32)
    target_logit = tl.zeros([], dtype=tl.float32)
    logit_sum = tl.zeros([], dtype=tl.float32)
    # pass 1: online log-sum-exp, target logit, logit sum
    for start in range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        in_vocab = cols < V
        z = tl.load(row_ptr + cols, mask=in_vocab, other=-float("inf")).to(tl.float32)
        new_max = tl.maximum(running_max, tl.max(z, axis=0))
        running_sum = running_sum * tl.exp(running_max - new_max) + tl.sum(tl.exp(z - new_max), axis=0)
        running_max = new_max
        logit_sum += tl.sum(tl.where(in_vocab, z, 0.0), axis=0)
        target_logit += tl.sum(tl.where(cols == target, z, 0.0), axis=0)
    lse = running_max + tl.log(running_sum)
    valid = target != ignore_index
    loss = lse - (1.0 - smoothing) * target_logit - smoothing / V * logit_sum + z_loss * lse * lse
    tl.store(loss_ptr + row, tl.where(valid, loss, 0.0))
    tl.store(lse_ptr + row, lse)
    # pass 2: the gradient, written over the logits (row_scale is 0 for ignored rows)
    scale = tl.load(row_scale_ptr + row)
    for start in range(0, V, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        in_vocab = cols < V
        z = tl.load(row_ptr + cols, mask=in_vocab, other=0.0).to(tl.float32)
        grad = tl.exp(z - lse) * (1.0 + 2.0 * z_loss * lse) - smoothing / V
        grad = tl.where(cols == target, grad - (1.0 - smoothing), grad)
        tl.store(row_ptr + cols, (grad * scale).to(logits_ptr.dtype.element_ty), mask=in_vocab)


def cross_entropy_forward(
    x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int, z_loss: float, label_smoothing: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss (scalar), dloss/dx and dloss/dw for x (N, D), w (V, D), y (N,)."""
    assert x.ndim == 2 and w.ndim == 2 and x.shape[1] == w.shape[1] and y.shape == (x.shape[0],)
    require_device(x, w)
    n, v = x.shape[0], w.shape[0]
    logits = x @ w.T  # (N, V) in the input dtype; becomes the gradient buffer
    valid = y != ignore_index
    n_valid = valid.sum()
    row_scale = valid.to(torch.float32) / n_valid
    loss_rows = torch.empty(n, dtype=torch.float32, device=x.device)
    lse = torch.empty(n, dtype=torch.float32, device=x.device)
    args = (logits, logits.stride(0), y.contiguous(), row_scale, loss_rows, lse, v, ignore_index, float(z_loss),
            float(label_smoothing))
    if v < BLOCK_V:  # a short vocabulary: one step of its next power of two, nothing to tune
        _cross_entropy_fwd_bwd_kernel.fn[(n,)](*args, BLOCK_V=triton.next_power_of_2(v))
    else:
        _cross_entropy_fwd_bwd_kernel[(n,)](*args)
    grad_logits = logits
    dx = grad_logits @ w
    dw = grad_logits.T @ x
    return loss_rows.sum() / n_valid, dx, dw


class CrossEntropyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int, z_loss: float,
                label_smoothing: float) -> torch.Tensor:
        loss, dx, dw = cross_entropy_forward(x, w, y, ignore_index, z_loss, label_smoothing)
        ctx.save_for_backward(dx, dw)
        return loss.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        dx, dw = ctx.saved_tensors
        return dx * grad_loss.to(dx.dtype), dw * grad_loss.to(dw.dtype), None, None, None, None


def cross_entropy(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
                  label_smoothing: float = 0.0) -> torch.Tensor:
    return CrossEntropyFunction.apply(x, w, y, ignore_index, z_loss, label_smoothing)


def compile_specs() -> list[CompileSpec]:
    """The gpu grid's launches: bf16 logits (loss/linear_cross_entropy), every V >= 32000, so each config."""
    return [CompileSpec(_cross_entropy_fwd_bwd_kernel, "bfloat16", {},
                        pointers={"targets_ptr": "i64", "row_scale_ptr": "fp32", "loss_ptr": "fp32", "lse_ptr": "fp32"},
                        floats=("z_loss", "smoothing"), divisible=("stride_row", "V"))]
