"""Dense attention: Vaswani et al., "Attention Is All You Need", arXiv:1706.03762.

out = softmax(q k^T / sqrt(d)) v over all N x N query-key pairs: the baseline every
sparse pattern is measured against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.methods.attention._lm import lm_method
from effbench.methods.attention._masked import (
    FLASH_ATTN,
    TRITON,
    XFORMERS,
    flash_attention,
    flex_attention_call,
    full_mask,
    reference_attention,
    triton_attention,
    xformers_attention,
)
from effbench.registry import Method

method = Method(
    task="attention/masked_attention",
    name="dense",
    paper="Attention Is All You Need",
    arxiv="1706.03762",
    summary="Every query attends every key; no mask.",
    mask=full_mask,
)
method.impl("reference")(reference_attention)
method.impl("triton", **TRITON)(triton_attention)


@method.impl("sdpa")
def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """No mask at all, so torch may pick its fastest (flash / memory-efficient) backend."""
    return F.scaled_dot_product_attention(q, k, v)


@method.impl("flex")
def flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """FlexAttention without a BlockMask (every block computed)."""
    return flex_attention_call(q, k, v)


@method.impl("xformers", **XFORMERS)
def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return xformers_attention(q, k, v)


@method.impl("flash_attn", **FLASH_ATTN)
def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return flash_attention(q, k, v, causal=False)

lm = lm_method(method)  # the same pattern inside a trained LM (attention/lm)
