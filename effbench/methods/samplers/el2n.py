"""Data Diet, EL2N scores: Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet: Finding Important
Examples Early in Training", arXiv:2107.07075.

The training set is pruned once, from early-training scores: ``score_runs`` copies of the
model's initial weights each train ``score_steps`` uniform steps in their own seeded data
order (the paper averages over independent initialisations instead), and every training
example gets its mean EL2N score ``||softmax(f(x)) - onehot(y)||_2``. The ``keep`` fraction
with the highest scores is kept (the paper keeps the hardest examples). Afterwards each step
trains on up to k uniformly chosen candidates of the pool that were kept. The scoring runs
happen on the first step, inside the timed region: their cost is in ``time_to_target_s``.
"""

from __future__ import annotations

import copy

import torch

from effbench.registry import Method
from effbench.train import CandidatePool, per_example_loss

method = Method(
    task="sampler/data_selection",
    name="el2n",
    paper="Deep Learning on a Data Diet: Finding Important Examples Early in Training",
    arxiv="2107.07075",
    summary="Prune to the examples of highest early-training error norm (EL2N), then sample uniformly.",
    keep=0.5,
    score_runs=2,
    score_steps=50,
    score_batch=64,
    score_lr=0.05,
)


def el2n(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||softmax(logits) - onehot(y)||_2`` per row."""
    residual = torch.softmax(logits.double(), -1)
    residual[torch.arange(len(y)), y] -= 1
    return torch.linalg.vector_norm(residual, dim=-1)


def kept_mask(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """True for the ``ceil(keep * n)`` highest scores (ties broken by position)."""
    n_keep = max(1, -int(-keep * len(scores) // 1))
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[torch.sort(scores.cpu(), descending=True, stable=True).indices[:n_keep]] = True
    return mask


def early_scores(pool: CandidatePool) -> torch.Tensor:
    """Mean EL2N over ``score_runs`` short uniform training runs from copies of the model."""
    data, extras = pool.data, method.extras
    n = data.x_train.shape[0]
    total = torch.zeros(n, dtype=torch.float64)
    for run in range(extras["score_runs"]):
        gen = torch.Generator().manual_seed(run)
        scorer = copy.deepcopy(pool.model)
        optimizer = torch.optim.SGD(scorer.parameters(), lr=extras["score_lr"], momentum=0.9)
        for _ in range(extras["score_steps"]):
            batch = torch.randint(n, (extras["score_batch"],), generator=gen).to(data.x_train.device)
            loss = per_example_loss(scorer, pool.kind, data.x_train[batch], data.y_train[batch]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            total += el2n(scorer(data.x_train).cpu(), data.y_train.cpu())
        pool.scored += n
    return total / extras["score_runs"]


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    if pool.kind != "classify":
        raise ValueError("EL2N scores need class labels")
    if "kept" not in pool.memory:
        pool.memory["kept"] = kept_mask(early_scores(pool), method.extras["keep"])
    kept = pool.memory["kept"][pool.indices.cpu()].nonzero().flatten()
    if kept.numel() == 0:  # a pool of pruned examples only: train on one at random rather than none
        return torch.randint(pool.size, (1,), generator=generator), None
    return kept[torch.randperm(kept.numel(), generator=generator)[:k]], None
