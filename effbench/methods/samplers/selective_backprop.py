"""Selective Backprop: Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest Losers",
arXiv:1910.00762.

Every candidate gets a forward pass; its loss joins a history of the last ``history`` losses
seen, and it is kept for the backward pass with probability ``CDF(loss) ** beta``, CDF being
the fraction of the history below its loss (the paper's percentile rule; beta is its
"selectivity"). Kept candidates train in pool order, at most ``k`` of them; the paper waits
for a full batch of kept examples, here a step trains on however many of the pool were kept
(at least one), so ``examples_seen`` counts the backward passes actually paid for.
"""

from __future__ import annotations

import torch

from effbench.plugs import CandidatePool
from effbench.registry import Method

method = Method(
    task="sampler/data_selection",
    name="selective_backprop",
    paper="Accelerating Deep Learning by Focusing on the Biggest Losers",
    arxiv="1910.00762",
    summary="Forward every candidate; back-propagate each with probability (loss percentile)^beta.",
    beta=2.0,
    history=1024,
)


def keep_probabilities(losses: torch.Tensor, history: torch.Tensor, beta: float) -> torch.Tensor:
    """``P(keep) = (fraction of history strictly below the loss) ** beta``."""
    below = (history[None, :] < losses[:, None]).double().mean(1)
    return below.pow(beta)


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    losses = pool.losses().detach().cpu().double()
    past = pool.memory.get("losses", torch.empty(0, dtype=torch.float64))
    history = torch.cat([past, losses])[-method.extras["history"]:]
    pool.memory["losses"] = history
    keep = torch.rand(pool.size, generator=generator, dtype=torch.float64) < keep_probabilities(
        losses, history, method.extras["beta"])
    chosen = keep.nonzero().flatten()[:k]
    if chosen.numel() == 0:  # never an empty step: the highest loss trains
        chosen = losses.argmax().reshape(1)
    return chosen, None
