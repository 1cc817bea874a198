"""Sliding-window attention: Beltagy et al., "Longformer: The Long-Document Transformer", arXiv:2004.05150.

Causal form, as used in decoder LMs (e.g. Mistral 7B): query i attends keys j with
i - window < j <= i, so each row attends min(i + 1, window) keys and the cost is
O(N * window) instead of O(N^2).
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.methods.attention._lm import lm_method
from effbench.methods.attention._masked import (
    FLASH_ATTN,
    TRITON,
    XFORMERS,
    MaskMod,
    flash_attention,
    flex_impl,
    mask_from_mod,
    need,
    reference_attention,
    sdpa_attention,
    triton_attention,
    xformers_attention,
)
from effbench.registry import Method


def window_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    (window,) = need(point, "window")
    return lambda b, h, q_idx, kv_idx: (kv_idx <= q_idx) & (q_idx - kv_idx < window)


window_mask = mask_from_mod(window_mod)

method = Method(
    task="attention/masked_attention",
    name="sliding_window",
    paper="Longformer: The Long-Document Transformer",
    arxiv="2004.05150",
    summary="Each query attends only the previous `window` keys (itself included): a banded causal mask.",
    mask=window_mask,
)
method.impl("reference")(reference_attention)
method.impl("triton", **TRITON)(triton_attention)
method.impl("sdpa")(sdpa_attention)
method.impl("flex")(flex_impl(window_mod))


@method.impl("xformers", **XFORMERS)
def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
             point: dict[str, Any]) -> torch.Tensor:
    from xformers.ops.fmha.attn_bias import LocalAttentionFromBottomRightMask

    # key j allowed when i - window_left <= j <= i + window_right (square: no bottom-right shift)
    return xformers_attention(q, k, v, LocalAttentionFromBottomRightMask(window_left=point["window"] - 1,
                                                                          window_right=0))


@method.impl("flash_attn", **FLASH_ATTN)
def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
               point: dict[str, Any]) -> torch.Tensor:
    # window_size = (left, right): keys i - left .. i + right, right = 0 under causal
    return flash_attention(q, k, v, causal=True, window_size=(point["window"] - 1, 0))

lm = lm_method(method)  # the same pattern inside a trained LM (attention/lm)
