"""CoLoR-Filter, conditional loss reduction filtering: Brandfonbrener, Zhang, Kirsch, Schwarz & Kakade,
"CoLoR-Filter: Conditional Loss Reduction Filtering for Targeted Language Model Pre-training",
arXiv:2406.10670.

Two auxiliary models score every training sequence once: a *prior* model trained on a random
``prior_fraction`` of the training pool, and a *conditional* model, the prior fine-tuned on the
downstream sample (``Dataset.x_target``). A sequence's score is the loss reduction the
downstream data buys, ``loss_prior(x) - loss_conditional(x)``; the top ``keep`` (= 1/tau, the
paper's selection ratio) of the training split is kept, and each step trains on up to k
uniformly chosen kept candidates of the pool. Both models have the target's architecture and
its initial weights, trained with SGD (momentum 0.9); training and scoring happen on the first
step, inside the timed region (the scoring passes count in ``examples_scored``).

Deviation: the paper selects from a fixed candidate stream once, before training, with models
of 150M parameters trained to convergence; here the auxiliary models are short runs of the
target's own tiny architecture, and their cost is charged to the method's wall-clock.
"""

from __future__ import annotations

import torch

from effbench.methods.samplers._pruning import among_kept, kept_mask
from effbench.plugs import CandidatePool, fit_copy, per_example_loss
from effbench.registry import Method, Skipped

method = Method(
    task="sampler/data_selection",
    name="color_filter",
    paper="CoLoR-Filter: Conditional Loss Reduction Filtering for Targeted Language Model Pre-training",
    arxiv="2406.10670",
    summary="Keep the sequences whose loss drops most when a prior model is fine-tuned on downstream data.",
    prior_fraction=0.25,
    prior_steps=200,
    conditional_steps=100,
    aux_batch=32,
    aux_lr=0.05,
    keep=0.5,
)


def loss_reduction(prior: torch.Tensor, conditional: torch.Tensor) -> torch.Tensor:
    """The CoLoR score, ``-log p(x | conditional) + log p(x | prior)`` negated: higher = keep."""
    return prior.double().cpu() - conditional.double().cpu()


def _losses(model: torch.nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([per_example_loss(model, kind, x[i:i + 1024], y[i:i + 1024]) for i in range(0, len(x), 1024)])


def color_scores(pool: CandidatePool) -> torch.Tensor:
    """Prior model on a random part of the pool, conditional model = prior + downstream; their loss gap."""
    data, extras = pool.data, method.extras
    n = data.x_train.shape[0]
    gen = torch.Generator().manual_seed(0)
    prior_rows = torch.randperm(n, generator=gen)[: max(1, int(n * extras["prior_fraction"]))]
    prior = fit_copy(pool.model, pool.kind, data.x_train, data.y_train, prior_rows.to(data.x_train.device),
                     extras["prior_steps"], extras["aux_batch"], extras["aux_lr"], gen)
    # the downstream sample holds input windows: next-byte pairs within each window
    x_down, y_down = data.x_target[:, :-1], data.x_target[:, 1:]
    down_rows = torch.arange(len(x_down), device=x_down.device)
    conditional = fit_copy(prior, pool.kind, x_down, y_down, down_rows, extras["conditional_steps"],
                           extras["aux_batch"], extras["aux_lr"], gen)
    scores = loss_reduction(_losses(prior, pool.kind, data.x_train, data.y_train),
                            _losses(conditional, pool.kind, data.x_train, data.y_train))
    pool.scored += 2 * n
    return scores


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    data = pool.data
    if pool.kind != "lm" or data is None or data.x_target is None:
        raise Skipped("CoLoR-Filter needs token data with a downstream sample (Dataset.x_target)")
    if "kept" not in pool.memory:
        pool.memory["kept"] = kept_mask(color_scores(pool), method.extras["keep"])
    return among_kept(pool, pool.memory["kept"], k, generator)
