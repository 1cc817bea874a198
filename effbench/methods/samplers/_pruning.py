"""What the methods that prune the training set once share: a kept mask over the training split,
then uniform sampling among the kept candidates of each pool (``among_kept``). Data Diet's two
scores (Paul, Ganguli & Dziugaite, arXiv:2107.07075) also share their short scoring runs from
copies of the model, a per-example score averaged over them, the top ``keep`` fraction kept.

The scoring runs happen on the first step, inside the timed region, so their cost lands in
``time_to_target_s``; their forward passes count in ``examples_scored``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from effbench.plugs import CandidatePool, fit_copy
from effbench.registry import Skipped

# score(model, x, y) -> (N,) float64 score per example; higher = keep
Score = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def kept_mask(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """True for the ``ceil(keep * n)`` highest scores (ties broken by position)."""
    n_keep = max(1, -int(-keep * len(scores) // 1))
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[torch.sort(scores.cpu(), descending=True, stable=True).indices[:n_keep]] = True
    return mask


def early_scores(pool: CandidatePool, score: Score, extras: dict) -> torch.Tensor:
    """Mean score over ``score_runs`` copies of the model's initial weights, each trained
    ``score_steps`` uniform steps (SGD, momentum 0.9) in its own seeded data order (the paper
    averages over independent initialisations instead); ``score_steps = 0`` scores at init."""
    data = pool.data
    n = data.x_train.shape[0]
    total = torch.zeros(n, dtype=torch.float64)
    for run in range(extras["score_runs"]):
        gen = torch.Generator().manual_seed(run)
        rows = torch.arange(n, device=data.x_train.device)
        scorer = fit_copy(pool.model, pool.kind, data.x_train, data.y_train, rows, extras["score_steps"],
                          extras["score_batch"], extras["score_lr"], gen)
        total += torch.cat([score(scorer, data.x_train[i:i + 1024], data.y_train[i:i + 1024]).cpu()
                            for i in range(0, n, 1024)])
        pool.scored += n
    return total / extras["score_runs"]


def select_kept(pool: CandidatePool, k: int, generator: torch.Generator, score: Score,
                extras: dict) -> tuple[torch.Tensor, None]:
    """Up to k uniformly chosen candidates among those the pruning kept (scored on the first call)."""
    if pool.kind != "classify":
        raise Skipped(f"Data Diet scores need class labels, not {pool.kind!r} data")
    if "kept" not in pool.memory:
        pool.memory["kept"] = kept_mask(early_scores(pool, score, extras), extras["keep"])
    return among_kept(pool, pool.memory["kept"], k, generator)


def among_kept(pool: CandidatePool, kept_rows: torch.Tensor, k: int,
               generator: torch.Generator) -> tuple[torch.Tensor, None]:
    """Up to k uniformly chosen candidates whose training-split rows ``kept_rows`` (bool) keeps."""
    kept = kept_rows[pool.indices.cpu()].nonzero().flatten()
    if kept.numel() == 0:  # a pool of pruned examples only: train on one at random rather than none
        return torch.randint(pool.size, (1,), generator=generator), None
    return kept[torch.randperm(kept.numel(), generator=generator)[:k]], None
