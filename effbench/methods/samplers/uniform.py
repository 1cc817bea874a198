"""Uniform sampling: the baseline every selection method must beat. Scores nothing."""

from __future__ import annotations

import torch

from effbench.plugs import CandidatePool
from effbench.registry import Method

method = Method(
    task="sampler/data_selection",
    name="uniform",
    summary="Train on k candidates drawn uniformly at random from the pool.",
)


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    return torch.randperm(pool.size, generator=generator)[:k], None
