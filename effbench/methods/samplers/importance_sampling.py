"""Importance sampling by the gradient-norm upper bound: Katharopoulos & Fleuret, "Not All Samples
Are Created Equal: Deep Learning with Importance Sampling", arXiv:1803.00942.

From a presampled pool of B candidates, each scored by the norm of its loss gradient with
respect to the network's outputs (``CandidatePool.grad_norm_bound``: for cross-entropy
``||softmax(z) - onehot(y)||``, an upper bound of the full per-example gradient norm up to a
constant), k examples are drawn with replacement with ``p_i = G_i / sum G`` and weighted
``w_i = 1 / (B p_i)`` so the weighted mean loss is an unbiased estimate of the pool's mean.
The paper switches importance sampling on only once its estimated variance reduction is
large enough; here it is always on (the switch is a tuning of when, not of how).
"""

from __future__ import annotations

import torch

from effbench.plugs import CandidatePool
from effbench.registry import Method, Skipped

method = Method(
    task="sampler/data_selection",
    name="importance_sampling",
    paper="Not All Samples Are Created Equal: Deep Learning with Importance Sampling",
    arxiv="1803.00942",
    summary="Sample by the output-gradient norm bound, weight by 1/(B p) to stay unbiased.",
)


def sampling_distribution(bound: torch.Tensor) -> torch.Tensor:
    """``p_i = G_i / sum G``, uniform where every bound is zero (a pool the model fits exactly)."""
    bound = bound.detach().cpu().double()
    total = bound.sum()
    return bound / total if total > 0 else torch.full_like(bound, 1 / bound.numel())


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if pool.kind not in ("classify", "regress"):
        raise Skipped(f"the output-gradient bound is defined here for classification and regression, not {pool.kind!r}")
    probs = sampling_distribution(pool.grad_norm_bound())
    chosen = torch.multinomial(probs, k, replacement=True, generator=generator)
    return chosen, (1.0 / (pool.size * probs[chosen])).float()
