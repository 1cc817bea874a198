"""Dynamic loss-based sample reweighting: Sow et al., "Dynamic Loss-Based
Sample Reweighting for Improved Large Language Model Pretraining" (ICLR 2025), arXiv:2502.06733.

No scoring pass and no per-example history: the weights come from the training forward's own
detached per-sequence (per-example) losses l_i of the batch. The losses are min-max scaled to
x_i = (2 l_i - (l_max + l_min)) / (l_max - l_min) in [-1, 1], a shape f is applied, and the
weights are ``B * softmax(f(x) / r)`` (mean 1, so equal weights give the plain mean loss):

- ``linupper``: f = min(x + 1, 1), the lowest-loss (redundant, already learnt) examples are
  down-weighted, the upper half weighted equally;
- ``quadratic``: f = 1 - x^2, both extremes down-weighted (the authors' code calls it ``mid``);
- ``extremes``: f = |x|, both extremes up-weighted.

Defaults: ``linupper`` with r = 0.4 (the temperature of the authors' shipped configurations,
read in their public code). The batch is drawn uniformly from the pool. Deviation: the authors
train uniformly for a burn-in of 1000 steps before reweighting; our budgets are a few hundred
steps, so reweighting starts at step ``burnin_steps`` = 0.
"""

from __future__ import annotations

from functools import partial

import torch

from effbench.methods.samplers import uniform
from effbench.plugs import CandidatePool
from effbench.registry import Method

method = Method(
    task="sampler/data_selection",
    name="loss_reweighting",
    paper="Dynamic Loss-Based Sample Reweighting for Improved Large Language Model Pretraining",
    arxiv="2502.06733",
    summary="Reweight each batch's examples by a softmax of a shape of their min-max scaled loss (LinUpper).",
    strategy="linupper",
    temperature=0.4,
    burnin_steps=0,
)

SHAPES = {
    "linupper": lambda x: torch.clamp(x + 1, max=1.0),
    "quadratic": lambda x: 1 - x.square(),
    "extremes": lambda x: x.abs(),
}


def loss_weights(losses: torch.Tensor, strategy: str, temperature: float) -> torch.Tensor:
    """``B * softmax(f(scaled loss) / r)`` over a batch of per-example losses; all equal -> ones."""
    losses = losses.detach().double()
    spread = losses.max() - losses.min()
    if spread <= 0:
        return torch.ones_like(losses)
    scaled = (2 * losses - (losses.max() + losses.min())) / spread
    return len(losses) * torch.softmax(SHAPES[strategy](scaled) / temperature, dim=0)


def _from_training_losses(loss: torch.Tensor, valid: torch.Tensor | None, strategy: str,
                          temperature: float) -> torch.Tensor:
    if valid is not None:  # token data: per-token losses -> each sequence's mean token loss
        loss = (loss * valid).sum(-1) / valid.sum(-1).clamp_min(1)
    return loss_weights(loss, strategy, temperature)


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator):
    chosen, _ = uniform.reference(pool, k, generator)
    extras = method.extras
    if pool.step <= extras["burnin_steps"]:
        return chosen, None
    return chosen, partial(_from_training_losses, strategy=extras["strategy"], temperature=extras["temperature"])
