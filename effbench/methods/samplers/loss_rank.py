"""Online batch selection by loss rank: Loshchilov & Hutter, "Online Batch Selection for Faster
Training of Neural Networks", arXiv:1511.06343.

Examples are ranked by loss, highest first (rank r = 0 .. n-1), and drawn with
probability p_r proportional to exp(-log(s) * r / n), so the highest-loss example is
``s`` times likelier than the lowest (the paper's selection pressure s_e). The paper
ranks the whole dataset by losses remembered from when each example was last seen;
here the ranking is over a fresh candidate pool scored with the current model, and its
scoring forward pass counts in wall time.
"""

from __future__ import annotations

import math

import torch

from effbench.plugs import CandidatePool
from effbench.registry import Method

method = Method(
    task="sampler/data_selection",
    name="loss_rank",
    paper="Online Batch Selection for Faster Training of Neural Networks",
    arxiv="1511.06343",
    summary="Sample high-loss examples more often: probability decays exponentially with loss rank.",
    pressure=100.0,
)


def rank_probabilities(losses: torch.Tensor, pressure: float) -> torch.Tensor:
    """Selection probability of each example from its loss rank (0 = highest loss)."""
    n = losses.shape[0]
    losses = losses.detach().cpu()  # tiny: rank and sample on the CPU with the CPU generator
    rank = torch.empty(n, dtype=torch.float64)
    rank[torch.argsort(losses, descending=True, stable=True)] = torch.arange(n, dtype=torch.float64)
    weights = torch.exp(-math.log(pressure) * rank / n)
    return weights / weights.sum()


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    probs = rank_probabilities(pool.losses(), method.extras["pressure"])
    return torch.multinomial(probs, k, replacement=False, generator=generator), None
