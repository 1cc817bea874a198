"""Label smoothing: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
arXiv:1512.00567. Targets (1 - eps) onehot + eps / C:  loss = (1 - eps) CE + eps * mean_c(-log p_c)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/classification",
    name="label_smoothing",
    paper="Rethinking the Inception Architecture for Computer Vision",
    arxiv="1512.00567",
    summary="Cross-entropy against targets mixed with the uniform distribution (eps = 0.1).",
    eps=0.1,
)


@method.impl("reference")
def reference(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              y: torch.Tensor) -> torch.Tensor:
    log_p = F.log_softmax(F.linear(features, weight, bias), dim=-1)
    eps = method.extras["eps"]
    return -(1 - eps) * log_p.gather(1, y[:, None])[:, 0] - eps * log_p.mean(-1)
