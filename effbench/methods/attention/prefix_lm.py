"""Prefix LM: Raffel et al., "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer" (T5), arXiv:1910.10683, section 3.2.1.

A decoder whose first ``prefix`` positions (the input) are fully visible to each other
and to everything after them, while the rest (the target) is causal:

    allowed(i, j) = j <= i  or  j < prefix

so prefix rows attend the whole prefix and nothing after it.
"""

from __future__ import annotations

from typing import Any

from effbench.methods.attention._lm import lm_method
from effbench.methods.attention._masked import (
    FLASH_ATTN,
    TRITON,
    XFORMERS,
    MaskMod,
    flash_unfit,
    flex_impl,
    mask_from_mod,
    need,
    reference_attention,
    sdpa_attention,
    triton_attention,
    xformers_masked,
)
from effbench.registry import Method


def prefix_lm_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    (prefix,) = need(point, "prefix")
    return lambda b, h, q_idx, kv_idx: (kv_idx <= q_idx) | (kv_idx < prefix)


prefix_lm_mask = mask_from_mod(prefix_lm_mod)

method = Method(
    task="attention/masked_attention",
    name="prefix_lm",
    paper="Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer",
    arxiv="1910.10683",
    summary="The first `prefix` positions attend each other bidirectionally; the rest is causal and sees the prefix.",
    mask=prefix_lm_mask,
)
method.impl("reference")(reference_attention)
method.impl("triton", **TRITON)(triton_attention)
method.impl("sdpa")(sdpa_attention)
method.impl("flex")(flex_impl(prefix_lm_mod))
method.impl("xformers", **XFORMERS)(xformers_masked)
method.impl("flash_attn", **FLASH_ATTN)(flash_unfit("bidirectional-prefix"))

lm = lm_method(method)  # the same pattern inside a trained LM (attention/lm)
