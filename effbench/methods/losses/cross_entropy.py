"""Cross-entropy: the baseline of the classification workload. loss = -log softmax(W h + b)_y."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/classification",
    name="cross_entropy",
    summary="Softmax cross-entropy on the logits: the baseline every other classification loss is compared with.",
)


@method.impl("reference")
def reference(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(F.linear(features, weight, bias), y, reduction="none")
