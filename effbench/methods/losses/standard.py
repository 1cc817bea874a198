"""Standard next-token cross-entropy on every token: the baseline of loss/memorization."""

from __future__ import annotations

import torch

from effbench.registry import Method

method = Method(
    task="loss/memorization",
    name="standard",
    summary="Every next-token target counts: the baseline whose memorisation the goldfish loss tries to prevent.",
)


@method.impl("reference")
def reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return y
