"""Causal attention: the decoder mask of Vaswani et al., "Attention Is All You Need", arXiv:1706.03762.

Query i attends keys j <= i (itself and everything before it), the mask of every
autoregressive language model: N (N + 1) / 2 of the N^2 pairs, about half the dense work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.methods.attention._masked import causal_mod, flash_attention, xformers_attention
from effbench.methods.attention._pattern import masked_pattern


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """is_causal=True instead of the tensor: torch's flash / memory-efficient backends skip the upper triangle."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from xformers.ops.fmha.attn_bias import LowerTriangularMask

    return xformers_attention(q, k, v, LowerTriangularMask())


def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return flash_attention(q, k, v, causal=True)


method, lm = masked_pattern(
    "causal",
    summary="Each query attends itself and every earlier key (lower-triangular mask).",
    paper="Attention Is All You Need",
    arxiv="1706.03762",
    mod=causal_mod,
    sdpa=sdpa,
    xformers=xformers,
    flash_attn=flash_attn,
)
causal_mask = method.extras["mask"]  # (n, point, device) -> (N, N) bool, True = may attend
