"""The ``attention/lm`` form of a kernel mask pattern (not a method: pattern files call it).

A pattern file adds one line, ``lm = lm_method(method)``, and its mask then also trains a
language model: the same name, paper and mask builder, under the workload task
``attention/lm`` (``effbench.tasks.attention_lm``), which intersects the mask with the
causal one and plugs it into every attention layer of the model.

The ``reference`` implementation is masked SDPA, the same for every pattern, so per-step
times differ only by what the pattern itself costs (building a data-dependent mask) and
quality differs only by what the mask hides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method, UsageError

KERNEL_TASK = "attention/masked_attention"
LM_TASK = "attention/lm"


def masked_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SDPA with a bool mask, (N, N) or (B, H, N, N), True = may attend."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def lm_method(kernel: Method) -> Method:
    """The ``attention/lm`` Method of a kernel pattern method (its ``mask`` or ``dynamic_mask``)."""
    if kernel.task != KERNEL_TASK:
        raise UsageError(f"lm_method takes a {KERNEL_TASK} method, not {kernel.task}:{kernel.name}")
    if kernel.extras.get("bias_rank"):
        # the bias factors are inputs of the kernel case; a language model has nothing to draw them from
        raise UsageError(f"{kernel.name}: a low-rank score bias is not a mask pattern; it has no LM form")
    extras = {key: kernel.extras[key] for key in ("mask", "dynamic_mask") if key in kernel.extras}
    if not extras:
        raise UsageError(f"{kernel.name}: no 'mask' or 'dynamic_mask' in its extras")
    method = Method(LM_TASK, kernel.name, paper=kernel.paper, arxiv=kernel.arxiv, summary=kernel.summary, **extras)
    method.source_file = kernel.source_file  # provenance: results change when the pattern's file does
    method.impl("reference", note="masked SDPA with the pattern's mask and the causal mask")(masked_sdpa)
    return method
