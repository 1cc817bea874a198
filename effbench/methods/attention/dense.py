"""Dense attention: Vaswani et al., "Attention Is All You Need", arXiv:1706.03762.

out = softmax(q k^T / sqrt(d)) v over all N x N query-key pairs: the baseline every
sparse pattern is measured against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.methods.attention._masked import flash_attention, flex_attention_call, full_mask, xformers_attention
from effbench.methods.attention._pattern import masked_pattern


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """No mask at all, so torch may pick its fastest (flash / memory-efficient) backend."""
    return F.scaled_dot_product_attention(q, k, v)


def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """FlexAttention without a BlockMask (every block computed)."""
    return flex_attention_call(q, k, v)


def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return xformers_attention(q, k, v)


def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return flash_attention(q, k, v, causal=False)


method, lm = masked_pattern(
    "dense",
    summary="Every query attends every key; no mask.",
    paper="Attention Is All You Need",
    arxiv="1706.03762",
    mask=full_mask,
    sdpa=sdpa,
    flex=flex,
    xformers=xformers,
    flash_attn=flash_attn,
)
