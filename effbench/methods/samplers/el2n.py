"""Data Diet, EL2N scores: Paul, Ganguli & Dziugaite, "Deep Learning on a Data Diet: Finding Important
Examples Early in Training", arXiv:2107.07075.

The training set is pruned once, from early-training scores: each example's EL2N score
``||softmax(f(x)) - onehot(y)||_2`` averaged over ``score_runs`` short runs of
``score_steps`` steps; the ``keep`` fraction with the highest scores is kept (the paper keeps
the hardest examples), and each step trains on up to k uniformly chosen kept candidates of
the pool (``_pruning``).
"""

from __future__ import annotations

import torch

from effbench.methods.samplers._pruning import select_kept
from effbench.plugs import CandidatePool
from effbench.registry import Method

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


def score(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return el2n(model(x).cpu(), y.cpu())


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    return select_kept(pool, k, generator, score, method.extras)
