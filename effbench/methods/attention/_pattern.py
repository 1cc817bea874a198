"""The family kit of mask patterns (not a method: pattern files call it).

A pattern file defines its mask (a mask_mod factory, or a data-dependent builder) and whatever its peers need
done their own way, then one call makes both of its methods::

    method, lm = masked_pattern("sliding_window", summary=..., paper=..., arxiv=..., mod=window_mod,
                                flash_attn=flash_attn)

``attention/masked_attention`` gets the shared implementations, each replaceable by a keyword: ``reference``
(the definition), ``triton`` (effbench's block-sparse kernel), ``sdpa`` (with the boolean mask), ``flex``
(FlexAttention with the same mask_mod, or a lookup of a data-dependent mask), ``xformers`` (a dense bias) and
``flash_attn`` (a function, or a string naming what flash_attn cannot express: its cases are skipped with it).
``attention/lm`` gets the same pattern inside a trained language model (``_lm.lm_method``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from effbench.methods.attention._lm import KERNEL_TASK, lm_method
from effbench.methods.attention._masked import (
    FLASH_ATTN,
    TRITON,
    XFORMERS,
    ModFactory,
    flash_unfit,
    flex_impl,
    flex_lookup,
    mask_from_mod,
    reference_attention,
    sdpa_attention,
    triton_attention,
    xformers_masked,
)
from effbench.registry import Method, UsageError

Impl = Callable[..., Any]


def masked_pattern(
    name: str,
    *,
    summary: str,
    flash_attn: str | Impl,
    paper: str | None = None,
    arxiv: str | None = None,
    mod: ModFactory | None = None,
    mask: Callable[..., Any] | None = None,
    dynamic_mask: Callable[..., Any] | None = None,
    sdpa: Impl = sdpa_attention,
    flex: Impl | None = None,
    xformers: Impl = xformers_masked,
) -> tuple[Method, Method]:
    """The pattern's kernel method with every shared implementation, and its ``attention/lm`` method.

    Exactly one of ``mod`` (a static pattern's mask_mod factory: the mask and flex's mask_mod come from it),
    ``mask`` (a static mask builder ``(n, point, device) -> (N, N)``, with a ``flex`` of its own) and
    ``dynamic_mask`` (a builder from the inputs: flex looks the mask up) defines the pattern."""
    if sum(x is not None for x in (mod, mask, dynamic_mask)) != 1:
        raise UsageError(f"pattern {name!r}: give exactly one of mod=, mask= (static) and dynamic_mask=")
    if mask is not None and flex is None:
        raise UsageError(f"pattern {name!r}: a mask= without a mask_mod needs its own flex=")
    if dynamic_mask is not None:
        extras = {"dynamic_mask": dynamic_mask}
    else:
        extras = {"mask": mask if mask is not None else mask_from_mod(mod)}
    method = Method(KERNEL_TASK, name, paper=paper, arxiv=arxiv, summary=summary, **extras)
    method.source_file = sys._getframe(1).f_globals.get("__file__")  # provenance: the pattern's own file
    method.impl("reference")(reference_attention)
    method.impl("triton", **TRITON)(triton_attention)
    method.impl("sdpa")(sdpa)
    method.impl("flex")(flex or (flex_impl(mod) if mod is not None else flex_lookup))
    method.impl("xformers", **XFORMERS)(xformers)
    method.impl("flash_attn", **FLASH_ATTN)(flash_unfit(flash_attn) if isinstance(flash_attn, str) else flash_attn)
    return method, lm_method(method)
