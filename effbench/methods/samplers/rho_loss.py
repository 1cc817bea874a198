"""RHO-LOSS: Mindermann et al., "Prioritized Training on Points that are Learnable, Worth Learning,
and Not Yet Learnt", arXiv:2206.07137.

Each step trains on the k candidates of highest *reducible* hold-out loss,
``loss(current model) - loss(irreducible-loss model)``. The irreducible-loss (IL) model is
trained once, on hold-out data, and its loss on every training example is computed once and
kept. Both happen on the first step, inside the timed region, so their cost lands in
``time_to_target_s`` (and the IL scoring pass in ``examples_scored``).

Deviation: the paper trains the IL model on a separate hold-out set; our problems have none
apart from the eval split (which stays untouched), so the IL model trains on a fixed 25% of
the training split (dataset seed 0), and the target model still sees those examples. The IL
model has the target's architecture, a copy of its initial weights, trained with SGD
(momentum 0.9) for ``il_steps`` steps of ``il_batch``.
"""

from __future__ import annotations

import torch

from effbench.plugs import CandidatePool, fit_copy, per_example_loss
from effbench.registry import Method

method = Method(
    task="sampler/data_selection",
    name="rho_loss",
    paper="Prioritized Training on Points that are Learnable, Worth Learning, and Not Yet Learnt",
    arxiv="2206.07137",
    summary="Train on the top-k by reducible loss: current loss minus an irreducible-loss model's.",
    holdout_fraction=0.25,
    il_steps=300,
    il_batch=64,
    il_lr=0.05,
)


def top_reducible(losses: torch.Tensor, irreducible: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest ``losses - irreducible`` (ties broken by position)."""
    reducible = (losses.double().cpu() - irreducible.double().cpu())
    return torch.sort(reducible, descending=True, stable=True).indices[:k]


def irreducible_losses(pool: CandidatePool) -> torch.Tensor:
    """IL model trained on the hold-out part of the training split; its loss on every training example."""
    data, extras = pool.data, method.extras
    n = data.x_train.shape[0]
    gen = torch.Generator().manual_seed(0)
    holdout = torch.randperm(n, generator=gen)[: max(1, int(n * extras["holdout_fraction"]))].to(data.x_train.device)
    il_model = fit_copy(pool.model, pool.kind, data.x_train, data.y_train, holdout, extras["il_steps"],
                        extras["il_batch"], extras["il_lr"], gen)
    with torch.no_grad():
        scores = torch.cat([per_example_loss(il_model, pool.kind, data.x_train[i:i + 4096], data.y_train[i:i + 4096])
                            for i in range(0, n, 4096)])
    pool.scored += n
    return scores


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    if "irreducible" not in pool.memory:
        pool.memory["irreducible"] = irreducible_losses(pool)
    return top_reducible(pool.losses(), pool.memory["irreducible"][pool.indices], k), None
