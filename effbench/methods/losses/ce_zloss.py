"""Cross-entropy + z-loss: Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways",
arXiv:2204.02311. loss = CE + lambda * logsumexp(logits)^2 (lambda = 1e-4) keeps the softmax
normaliser near 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/classification",
    name="ce_zloss",
    paper="PaLM: Scaling Language Modeling with Pathways",
    arxiv="2204.02311",
    summary="Cross-entropy plus lambda * lse^2 (lambda = 1e-4), the auxiliary z-loss of PaLM.",
    z_loss=1e-4,
)


@method.impl("reference")
def reference(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              y: torch.Tensor) -> torch.Tensor:
    logits = F.linear(features, weight, bias)
    lse = torch.logsumexp(logits, dim=-1)
    return lse - logits.gather(1, y[:, None])[:, 0] + method.extras["z_loss"] * lse.square()
