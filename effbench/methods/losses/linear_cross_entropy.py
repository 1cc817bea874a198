"""Linear cross-entropy: the LM head matmul fused with the token-level cross-entropy.

loss = mean over tokens i with y_i != ignore of  logsumexp_v(x_i . w_v) - x_i . w_{y_i}.
The reference materialises all (N, V) logits (upcast to at least fp32). ``chunked``
never holds more than a block of rows' logits: the forward keeps only the per-row
log-sum-exp, and the backward recomputes each block's logits to form its gradient
(softmax - onehot) / n_valid, the idea behind memory-efficient heads such as
Cut Cross-Entropy (Wijmans et al., arXiv:2411.09009).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/linear_cross_entropy",
    name="linear_cross_entropy",
    summary="Cross-entropy of a linear LM head; implementations differ in how much of the N x V logits "
    "they hold in memory.",
)


def _logit_dtype(dtype: torch.dtype) -> torch.dtype:
    # Softmax in at least fp32, as every production head does; float64 stays float64.
    return torch.promote_types(dtype, torch.float32)


@method.impl("reference")
def reference(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    logits = (x @ w.T).to(_logit_dtype(x.dtype))  # (N, V)
    return F.cross_entropy(logits, y, ignore_index=ignore_index)


def _rows_per_block(n_vocab: int, budget_elements: int) -> int:
    return max(1, budget_elements // n_vocab)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int,
                block_rows: int) -> torch.Tensor:
        valid = y != ignore_index
        safe_y = torch.where(valid, y, 0)
        n_valid = valid.sum()
        lse = torch.empty(x.shape[0], dtype=_logit_dtype(x.dtype), device=x.device)
        for start in range(0, x.shape[0], block_rows):
            rows = slice(start, start + block_rows)
            logits = (x[rows] @ w.T).to(lse.dtype)  # (block, V): the only logits alive
            lse[rows] = torch.logsumexp(logits, dim=-1)
        # Target logits as row-wise dot products: no gather over a logits matrix needed.
        target = (x * w[safe_y]).sum(-1).to(lse.dtype)
        loss = torch.where(valid, lse - target, 0).sum() / n_valid
        ctx.save_for_backward(x, w, safe_y, valid, lse, n_valid)
        ctx.block_rows = block_rows
        return loss.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w, safe_y, valid, lse, n_valid = ctx.saved_tensors
        scale = (grad_loss.to(lse.dtype) / n_valid) * valid.to(lse.dtype)  # (N,)
        dx = torch.empty_like(x)
        dw = torch.zeros(w.shape, dtype=lse.dtype, device=w.device)
        for start in range(0, x.shape[0], ctx.block_rows):
            rows = slice(start, start + ctx.block_rows)
            probs = (x[rows] @ w.T).to(lse.dtype)  # (block, V) logits, recomputed
            probs.sub_(lse[rows, None]).exp_()  # softmax in place: one block-sized buffer
            probs[torch.arange(probs.shape[0], device=x.device), safe_y[rows]] -= 1.0
            probs *= scale[rows, None]
            grad_logits = probs.to(x.dtype)  # matmuls in the input dtype, dw accumulated in fp32+
            dx[rows] = grad_logits @ w
            dw += (grad_logits.T @ x[rows]).to(dw.dtype)
        return dx, dw.to(w.dtype), None, None, None


@method.impl("chunked")
def chunked(
    x: torch.Tensor,
    w: torch.Tensor,
    y: torch.Tensor,
    ignore_index: int = -100,
    budget_elements: int = 1 << 22,
) -> torch.Tensor:
    """Row blocks of at most ``budget_elements`` logits (16 MiB in fp32), recomputed in backward."""
    block_rows = _rows_per_block(w.shape[0], budget_elements)
    return _ChunkedLinearCrossEntropy.apply(x, w, y, ignore_index, block_rows)
