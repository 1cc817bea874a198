"""Poly-1: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
Functions", arXiv:2204.12511.  loss = CE + eps (1 - p_y), eps = 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/classification",
    name="poly1",
    paper="PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions",
    arxiv="2204.12511",
    summary="Cross-entropy plus eps (1 - p_y): the first polynomial term re-weighted (eps = 1).",
    eps=1.0,
)


@method.impl("reference")
def reference(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              y: torch.Tensor) -> torch.Tensor:
    log_p_y = F.log_softmax(F.linear(features, weight, bias), dim=-1).gather(1, y[:, None])[:, 0]
    return -log_p_y + method.extras["eps"] * (1 - log_p_y.exp())
