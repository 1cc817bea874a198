"""Causal attention: the decoder mask of Vaswani et al., "Attention Is All You Need", arXiv:1706.03762.

Query i attends keys j <= i (itself and everything before it), the mask of every
autoregressive language model: N (N + 1) / 2 of the N^2 pairs, about half the dense work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.methods.attention._lm import lm_method
from effbench.methods.attention._masked import (
    FLASH_ATTN,
    TRITON,
    XFORMERS,
    causal_mod,
    flash_attention,
    flex_impl,
    mask_from_mod,
    reference_attention,
    triton_attention,
    xformers_attention,
)
from effbench.registry import Method

causal_mask = mask_from_mod(causal_mod)

method = Method(
    task="attention/masked_attention",
    name="causal",
    paper="Attention Is All You Need",
    arxiv="1706.03762",
    summary="Each query attends itself and every earlier key (lower-triangular mask).",
    mask=causal_mask,
)
method.impl("reference")(reference_attention)
method.impl("triton", **TRITON)(triton_attention)
method.impl("flex")(flex_impl(causal_mod))


@method.impl("sdpa")
def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """is_causal=True instead of the tensor: torch's flash / memory-efficient backends skip the upper triangle."""
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@method.impl("xformers", **XFORMERS)
def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from xformers.ops.fmha.attn_bias import LowerTriangularMask

    return xformers_attention(q, k, v, LowerTriangularMask())


@method.impl("flash_attn", **FLASH_ATTN)
def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return flash_attention(q, k, v, causal=True)

lm = lm_method(method)  # the same pattern inside a trained LM (attention/lm)
