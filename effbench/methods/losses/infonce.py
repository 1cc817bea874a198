"""Symmetric InfoNCE, the CLIP loss: Radford et al., "Learning Transferable Visual Models From
Natural Language Supervision", arXiv:2103.00020; tiled as in Inf-CL (Cheng et al., "Breaking the
Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss", arXiv:2410.17243).

S = s a t^T; loss = 1/2 mean_i (lse_j S_ij - S_ii) + 1/2 mean_j (lse_i S_ij - S_jj).
``reference`` materialises S (b x b); ``tiled`` keeps one block of rows of S at a time with
online column log-sum-exps, and recomputes the blocks in backward; ``triton`` never writes
S at all (``kernels/contrastive.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/contrastive",
    name="infonce",
    paper="Breaking the Memory Barrier: Near Infinite Batch Size Scaling for Contrastive Loss",
    arxiv="2410.17243",
    summary="The CLIP contrastive loss; implementations differ in how much of the b x b similarity matrix they hold.",
)


@method.impl("reference")
def reference(a: torch.Tensor, t: torch.Tensor, scale: float) -> torch.Tensor:
    compute = torch.promote_types(a.dtype, torch.float32)
    s = scale * (a.to(compute) @ t.to(compute).T)  # (b, b)
    labels = torch.arange(a.shape[0], device=a.device)
    return (0.5 * (F.cross_entropy(s, labels) + F.cross_entropy(s.T, labels))).to(a.dtype)


class _TiledInfoNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, t: torch.Tensor, scale: float, block: int) -> torch.Tensor:
        compute = torch.promote_types(a.dtype, torch.float32)
        b = a.shape[0]
        row_lse = torch.empty(b, dtype=compute, device=a.device)
        col_max = torch.full((b,), -torch.inf, dtype=compute, device=a.device)
        col_sum = torch.zeros(b, dtype=compute, device=a.device)
        for start in range(0, b, block):
            s = scale * (a[start : start + block].to(compute) @ t.to(compute).T)  # (block, b)
            row_lse[start : start + block] = torch.logsumexp(s, dim=1)
            new_max = torch.maximum(col_max, s.max(dim=0).values)  # online column log-sum-exp
            col_sum = col_sum * torch.exp(col_max - new_max) + torch.exp(s - new_max).sum(dim=0)
            col_max = new_max
        col_lse = col_max + col_sum.log()
        diag = scale * (a.to(compute) * t.to(compute)).sum(-1)
        ctx.save_for_backward(a, t, row_lse, col_lse)
        ctx.scale, ctx.block = scale, block
        return (0.5 * ((row_lse - diag).mean() + (col_lse - diag).mean())).to(a.dtype)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        a, t, row_lse, col_lse = ctx.saved_tensors
        compute = row_lse.dtype
        scale, block, b = ctx.scale, ctx.block, a.shape[0]
        a_c, t_c = a.to(compute), t.to(compute)
        da = torch.empty_like(a_c)
        dt = torch.zeros_like(t_c)
        factor = grad_loss.to(compute) * scale / (2 * b)
        for start in range(0, b, block):
            rows = slice(start, start + block)
            s = scale * (a_c[rows] @ t_c.T)  # recomputed (block, b)
            grad = torch.exp(s - row_lse[rows, None]) + torch.exp(s - col_lse[None, :])
            idx = torch.arange(grad.shape[0], device=a.device)
            grad[idx, idx + start] -= 2.0
            grad *= factor
            da[rows] = grad @ t_c
            dt += grad.T @ a_c[rows]
        return da.to(a.dtype), dt.to(t.dtype), None, None


@method.impl("tiled")
def tiled(a: torch.Tensor, t: torch.Tensor, scale: float, budget_elements: int = 1 << 22) -> torch.Tensor:
    """Row blocks of at most ``budget_elements`` similarities (16 MiB in fp32)."""
    return _TiledInfoNCE.apply(a, t, scale, max(1, budget_elements // a.shape[0]))


@method.impl("triton", needs=("triton",))
def triton(a: torch.Tensor, t: torch.Tensor, scale: float, **blocks: int) -> torch.Tensor:
    from effbench.kernels.contrastive import contrastive_loss

    return contrastive_loss(a, t, scale, **blocks)
