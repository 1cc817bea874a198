"""Sliding-window attention: Beltagy et al., "Longformer: The Long-Document Transformer", arXiv:2004.05150.

Causal form, as used in decoder LMs (e.g. Mistral 7B): query i attends keys j with
i - window < j <= i, so each row attends min(i + 1, window) keys and the cost is
O(N * window) instead of O(N^2).
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.methods.attention._masked import reference_attention, sdpa_attention
from effbench.registry import Method


def window_mask(n: int, point: dict[str, Any], device: str) -> torch.Tensor:
    i = torch.arange(n, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    return (j <= i) & (j > i - point["window"])


method = Method(
    task="attention/masked_attention",
    name="sliding_window",
    paper="Longformer: The Long-Document Transformer",
    arxiv="2004.05150",
    summary="Each query attends only the previous `window` keys (itself included): a banded causal mask.",
    mask=window_mask,
)
method.impl("reference")(reference_attention)
method.impl("sdpa")(sdpa_attention)
