"""Linear cross-entropy: the LM head matmul fused with the token-level cross-entropy.

For hidden states x (N, D), classifier w (V, D), logits z = x w^T, and each token i with
y_i != ignore, with z-loss coefficient lambda (PaLM, arXiv:2204.02311) and label
smoothing eps (PyTorch's definition: eps spread uniformly over all V classes):

    loss_i = lse_i - (1 - eps) z_{i,y_i} - (eps / V) sum_v z_{i,v} + lambda lse_i^2,
    lse_i = logsumexp_v z_{i,v};   loss = mean over non-ignored tokens.

Implementations differ in how much of the N x V logits they hold:
``reference`` materialises them (upcast to at least fp32), and ``compile`` is the same
code through ``torch.compile``; ``chunked`` keeps one block of
rows' logits at a time and recomputes them in backward; ``triton_ce`` materialises them
once and fuses softmax, loss and gradient in a Triton kernel writing the gradient in
place; ``triton_linear_ce`` never writes logits to global memory, in the manner of Cut
Cross-Entropy (Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
arXiv:2411.09009). Published packages: cut-cross-entropy's kernel with its default gradient
filter (``cce``) and without it (``cce_unfiltered``), both CUDA only, and its own
``torch.compile`` path (``cce_torch_compile``, which runs on the CPU too); Liger-Kernel's
fused linear cross-entropy (``liger``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from effbench.registry import Method, Skipped

method = Method(
    task="loss/linear_cross_entropy",
    name="linear_cross_entropy",
    paper="Cut Your Losses in Large-Vocabulary Language Models",
    arxiv="2411.09009",
    summary="Cross-entropy of a linear LM head (with optional z-loss and label smoothing); implementations "
    "differ in how much of the N x V logits they hold in memory.",
)


def _logit_dtype(dtype: torch.dtype) -> torch.dtype:
    # Softmax in at least fp32, as every production head does; float64 stays float64.
    return torch.promote_types(dtype, torch.float32)


@method.impl("reference")
def reference(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
              label_smoothing: float = 0.0) -> torch.Tensor:
    logits = (x @ w.T).to(_logit_dtype(x.dtype))  # (N, V)
    loss = F.cross_entropy(logits, y, ignore_index=ignore_index, label_smoothing=label_smoothing)
    if z_loss:
        valid = y != ignore_index
        lse = torch.logsumexp(logits, dim=-1)
        loss = loss + z_loss * (lse.square() * valid).sum() / valid.sum()
    return loss


_compiled_reference: Any = None


@method.impl("compile")
def compiled(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
             label_smoothing: float = 0.0) -> torch.Tensor:
    """The reference through ``torch.compile`` (dynamic shapes: compiled once per process and option set)."""
    global _compiled_reference
    if _compiled_reference is None:
        _compiled_reference = torch.compile(reference, dynamic=True)
    return _compiled_reference(x, w, y, ignore_index=ignore_index, z_loss=z_loss, label_smoothing=label_smoothing)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int,
                z_loss: float, label_smoothing: float, block_rows: int) -> torch.Tensor:
        valid = y != ignore_index
        safe_y = torch.where(valid, y, 0)
        n_valid = valid.sum()
        lse = torch.empty(x.shape[0], dtype=_logit_dtype(x.dtype), device=x.device)
        for start in range(0, x.shape[0], block_rows):
            rows = slice(start, start + block_rows)
            logits = (x[rows] @ w.T).to(lse.dtype)  # (block, V): the only logits alive
            lse[rows] = torch.logsumexp(logits, dim=-1)
        # Target logits and logit sums as row-wise products: no logits matrix needed.
        target = (x * w[safe_y]).sum(-1).to(lse.dtype)
        per_row = lse - (1 - label_smoothing) * target + z_loss * lse.square()
        if label_smoothing:
            per_row = per_row - label_smoothing / w.shape[0] * (x @ w.sum(0)).to(lse.dtype)
        loss = torch.where(valid, per_row, 0).sum() / n_valid
        ctx.save_for_backward(x, w, safe_y, valid, lse, n_valid)
        ctx.options = (z_loss, label_smoothing, block_rows)
        return loss.to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w, safe_y, valid, lse, n_valid = ctx.saved_tensors
        z_loss, label_smoothing, block_rows = ctx.options
        scale = (grad_loss.to(lse.dtype) / n_valid) * valid.to(lse.dtype)  # (N,)
        dx = torch.empty_like(x)
        dw = torch.zeros(w.shape, dtype=lse.dtype, device=w.device)
        for start in range(0, x.shape[0], block_rows):
            rows = slice(start, start + block_rows)
            grad = (x[rows] @ w.T).to(lse.dtype)  # (block, V) logits, recomputed
            grad.sub_(lse[rows, None]).exp_()  # softmax, in place: one block-sized buffer
            if z_loss:
                grad.mul_(1 + 2 * z_loss * lse[rows, None])
            if label_smoothing:
                grad.sub_(label_smoothing / w.shape[0])
            grad[torch.arange(grad.shape[0], device=x.device), safe_y[rows]] -= 1.0 - label_smoothing
            grad.mul_(scale[rows, None])
            grad_logits = grad.to(x.dtype)  # matmuls in the input dtype, dw accumulated in fp32+
            dx[rows] = grad_logits @ w
            dw += (grad_logits.T @ x[rows]).to(dw.dtype)
        return dx, dw.to(w.dtype), None, None, None, None, None


@method.impl("chunked")
def chunked(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
            label_smoothing: float = 0.0, budget_elements: int = 1 << 22) -> torch.Tensor:
    """Row blocks of at most ``budget_elements`` logits (16 MiB in fp32), recomputed in backward."""
    block_rows = max(1, budget_elements // w.shape[0])
    return _ChunkedLinearCrossEntropy.apply(x, w, y, ignore_index, z_loss, label_smoothing, block_rows)


@method.impl("triton_ce", needs=("triton",))
def triton_ce(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
              label_smoothing: float = 0.0) -> torch.Tensor:
    from effbench.kernels.cross_entropy import cross_entropy

    return cross_entropy(x, w, y, ignore_index, z_loss, label_smoothing)


@method.impl("triton_linear_ce", needs=("triton",))
def triton_linear_ce(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100,
                     z_loss: float = 0.0, label_smoothing: float = 0.0, **blocks: int) -> torch.Tensor:
    from effbench.kernels.linear_cross_entropy import linear_cross_entropy

    return linear_cross_entropy(x, w, y, ignore_index, z_loss, label_smoothing, **blocks)


def _cce(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int, z_loss: float, label_smoothing: float,
         **options: object) -> torch.Tensor:
    if z_loss or label_smoothing:
        raise Skipped("cut-cross-entropy has no z-loss or label smoothing")
    from cut_cross_entropy import linear_cross_entropy as cce_loss

    return cce_loss(x, w, y, ignore_index=ignore_index, reduction="mean", **options)


@method.impl("cce", needs=("cut_cross_entropy",), devices=("cuda",))
def cce(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
        label_smoothing: float = 0.0) -> torch.Tensor:
    """apple/ml-cross-entropy's Triton kernel with its default gradient filter (``filter_eps="high"``: backward
    blocks whose softmax is below the filter are skipped, so a flat softmax skips most of the work)."""
    return _cce(x, w, y, ignore_index, z_loss, label_smoothing, impl="cce")


@method.impl("cce_unfiltered", needs=("cut_cross_entropy",), devices=("cuda",))
def cce_unfiltered(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100,
                   z_loss: float = 0.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """The same kernel with the gradient filter off (``filter_eps=None``): every backward block computed."""
    return _cce(x, w, y, ignore_index, z_loss, label_smoothing, impl="cce", filter_eps=None)


@method.impl("cce_torch_compile", needs=("cut_cross_entropy",))
def cce_torch_compile(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100,
                      z_loss: float = 0.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """cut-cross-entropy's own torch.compile path (``impl="torch_compile"``), the one it runs without CUDA."""
    return _cce(x, w, y, ignore_index, z_loss, label_smoothing, impl="torch_compile")


@method.impl("liger", needs=("liger_kernel",), devices=("cuda",))
def liger(x: torch.Tensor, w: torch.Tensor, y: torch.Tensor, ignore_index: int = -100, z_loss: float = 0.0,
          label_smoothing: float = 0.0) -> torch.Tensor:
    """Liger-Kernel's fused linear cross-entropy (its lse_square_scale is the z-loss coefficient)."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=ignore_index, lse_square_scale=z_loss,
                                            label_smoothing=label_smoothing, reduction="mean")
    return loss(w, x, y)
