"""ESLM, selective language modeling by a loss quantile: Bal, Cevher & Muehlebach, "ESLM: Risk-Averse
Selective Language Modeling for Efficient Pretraining" (2025), arXiv:2505.19893.

Each step the batch is drawn uniformly from the pool; then, inside the loss, every token is
scored by its own (detached) training loss, the per-batch alpha-quantile of the scores (the
value-at-risk over the batch's counted tokens) is the threshold, and only tokens at or above it
are back-propagated: the loss is the mean over the kept tokens (a CVaR objective). No scoring
pass: the scores come from the training forward itself, so the saving a fused kernel could make
(no gradient through the dropped tokens' head rows) is not taken here, and the step costs what
uniform's does. On classification data the same rule applies to examples instead of tokens.

Unverified: the paper's default alpha (we use 0.6, keep the top 40%; it was not readable in a
public source), and whether the kept-token loss is normalised by the kept count (done here).
The entropy-scored variant and Ada-ESLM's adaptive alpha are not implemented.
"""

from __future__ import annotations

from functools import partial

import torch

from effbench.methods.samplers import uniform
from effbench.plugs import CandidatePool
from effbench.registry import Method

method = Method(
    task="sampler/data_selection",
    name="eslm",
    paper="ESLM: Risk-Averse Selective Language Modeling for Efficient Pretraining",
    arxiv="2505.19893",
    summary="Back-propagate only the tokens whose loss is at or above the batch's alpha-quantile (CVaR).",
    alpha=0.6,
)


def cvar_weights(loss: torch.Tensor, valid: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """Weights that turn the mean over counted entries into the mean over those at or above the
    alpha-quantile of ``loss``: kept / fraction kept, zero elsewhere."""
    loss = loss.detach()
    valid = torch.ones_like(loss, dtype=torch.bool) if valid is None else valid.bool()
    counted = loss[valid].double()
    if counted.numel() == 0:
        return valid.to(loss.dtype)
    threshold = torch.quantile(counted, alpha).to(loss.dtype)
    kept = (loss >= threshold) & valid
    return kept.to(loss.dtype) * (valid.sum() / kept.sum().clamp_min(1)).to(loss.dtype)


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator):
    chosen, _ = uniform.reference(pool, k, generator)
    return chosen, partial(cvar_weights, alpha=method.extras["alpha"])
