"""Focal loss: Lin et al., "Focal Loss for Dense Object Detection", arXiv:1708.02002.

loss = -(1 - p_y)^gamma log p_y (gamma = 2): well-classified examples are down-weighted."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/classification",
    name="focal",
    paper="Focal Loss for Dense Object Detection",
    arxiv="1708.02002",
    summary="Cross-entropy scaled by (1 - p_y)^gamma, gamma = 2.",
    gamma=2.0,
)


@method.impl("reference")
def reference(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              y: torch.Tensor) -> torch.Tensor:
    log_p_y = F.log_softmax(F.linear(features, weight, bias), dim=-1).gather(1, y[:, None])[:, 0]
    return -((1 - log_p_y.exp()) ** method.extras["gamma"]) * log_p_y
