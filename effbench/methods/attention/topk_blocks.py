"""Dynamic top-k block selection, as in the critical blocks of Zhang et al., "SLA: Beyond Sparsity
in Diffusion Transformers via Fine-Tunable Sparse-Linear Attention", arXiv:2509.24006.

The mask depends on the data. Queries and keys are mean-pooled over blocks of ``block``
tokens (the last block averages the tokens it has), block scores are q_bar k_bar^T, and
query block qb keeps the ``topk`` highest-scoring key blocks kb <= qb, plus its diagonal
block; inside the kept blocks the token mask is causal:

    allowed(b, h, i, j) = j <= i  and  j // block in kept(b, h, i // block)

SLA ranks softmax(q_bar k_bar^T / sqrt(d)) rows; softmax is monotone within a row, so its
top-k is the same. SLA's marginal blocks (its linear-attention branch) and its non-causal
form are left out: this is the sparse, critical-block part only, made causal for decoders.

The selection runs in the task's ``make_inputs``, outside the timed region: times are of
the attention given the mask, not of choosing it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from effbench.methods.attention._masked import need
from effbench.methods.attention._pattern import masked_pattern


def block_means(x: torch.Tensor, block: int) -> torch.Tensor:
    """(B, H, N, d) -> (B, H, T, d) fp32 means over blocks of ``block`` tokens, T = ceil(N / block)."""
    b, h, n, d = x.shape
    t = -(-n // block)
    sums = F.pad(x.float(), (0, 0, 0, t * block - n)).reshape(b, h, t, block, d).sum(3)
    counts = (n - torch.arange(t, device=x.device) * block).clamp(max=block)
    return sums / counts[:, None]


def kept_blocks(q: torch.Tensor, k: torch.Tensor, block: int, topk: int) -> torch.Tensor:
    """(B, H, T, T) bool: the top-k causal key blocks of every query block, and the diagonal."""
    scores = block_means(q, block) @ block_means(k, block).transpose(-2, -1)
    t = scores.shape[-1]
    idx = torch.arange(t, device=q.device)
    future = idx[None, :] > idx[:, None]
    scores = scores.masked_fill(future, float("-inf"))
    top = scores.topk(min(topk, t), dim=-1).indices
    kept = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top, True)
    return (kept & ~future) | torch.eye(t, dtype=torch.bool, device=q.device)  # rows with < topk past blocks


def topk_mask(q: torch.Tensor, k: torch.Tensor, point: dict[str, Any]) -> torch.Tensor:
    """The task's ``dynamic_mask``: (B, H, N, N) bool from the case's q and k."""
    block, topk = need(point, "block", "topk")
    n = q.shape[-2]
    token_block = torch.arange(n, device=q.device) // block
    mask = kept_blocks(q, k, block, topk)[:, :, token_block[:, None], token_block[None, :]]
    mask &= torch.ones(n, n, dtype=torch.bool, device=q.device).tril()  # in place: the mask may be large
    return mask


method, lm = masked_pattern(
    "topk_blocks",
    summary="Per query block: the top-k causal key blocks by mean-pooled q.k scores and the diagonal (data-dependent).",
    paper="SLA: Beyond Sparsity in Diffusion Transformers via Fine-Tunable Sparse-Linear Attention",
    arxiv="2509.24006",
    dynamic_mask=topk_mask,
    flash_attn="data-dependent block",
)
