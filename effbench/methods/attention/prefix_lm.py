"""Prefix LM: Raffel et al., "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer" (T5), arXiv:1910.10683, section 3.2.1.

A decoder whose first ``prefix`` positions (the input) are fully visible to each other
and to everything after them, while the rest (the target) is causal:

    allowed(i, j) = j <= i  or  j < prefix

so prefix rows attend the whole prefix and nothing after it.
"""

from __future__ import annotations

from typing import Any

from effbench.methods.attention._masked import MaskMod, need
from effbench.methods.attention._pattern import masked_pattern


def prefix_lm_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    (prefix,) = need(point, "prefix")
    return lambda b, h, q_idx, kv_idx: (kv_idx <= q_idx) | (kv_idx < prefix)


method, lm = masked_pattern(
    "prefix_lm",
    summary="The first `prefix` positions attend each other bidirectionally; the rest is causal and sees the prefix.",
    paper="Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer",
    arxiv="1910.10683",
    mod=prefix_lm_mod,
    flash_attn="bidirectional-prefix",
)
prefix_lm_mask = method.extras["mask"]  # (n, point, device) -> (N, N) bool, True = may attend
