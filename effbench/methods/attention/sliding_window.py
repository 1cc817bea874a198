"""Sliding-window attention: Beltagy et al., "Longformer: The Long-Document Transformer", arXiv:2004.05150.

Causal form, as used in decoder LMs (e.g. Mistral 7B): query i attends keys j with
i - window < j <= i, so each row attends min(i + 1, window) keys and the cost is
O(N * window) instead of O(N^2).
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.methods.attention._masked import MaskMod, flash_attention, need, xformers_attention
from effbench.methods.attention._pattern import masked_pattern


def window_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    (window,) = need(point, "window")
    return lambda b, h, q_idx, kv_idx: (kv_idx <= q_idx) & (q_idx - kv_idx < window)


def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
             point: dict[str, Any]) -> torch.Tensor:
    from xformers.ops.fmha.attn_bias import LocalAttentionFromBottomRightMask

    # key j allowed when i - window_left <= j <= i + window_right (square: no bottom-right shift)
    return xformers_attention(q, k, v, LocalAttentionFromBottomRightMask(window_left=point["window"] - 1,
                                                                          window_right=0))


def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
               point: dict[str, Any]) -> torch.Tensor:
    # window_size = (left, right): keys i - left .. i + right, right = 0 under causal
    return flash_attention(q, k, v, causal=True, window_size=(point["window"] - 1, 0))


method, lm = masked_pattern(
    "sliding_window",
    summary="Each query attends only the previous `window` keys (itself included): a banded causal mask.",
    paper="Longformer: The Long-Document Transformer",
    arxiv="2004.05150",
    mod=window_mod,
    xformers=xformers,
    flash_attn=flash_attn,
)
window_mask = method.extras["mask"]  # (n, point, device) -> (N, N) bool, True = may attend
