"""Full training: every parameter trains with AdamW (weight decay 0.01), the baseline of sampler/memory."""

from __future__ import annotations

import torch

from effbench.registry import Method

method = Method(
    task="sampler/memory",
    name="full_training",
    summary="Every parameter trains with AdamW: the memory and quality baseline.",
    weight_decay=0.01,
)


@method.impl("reference")
def reference(model: torch.nn.Module, lr: float, seed: int) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=method.extras["weight_decay"])
