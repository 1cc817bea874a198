"""The spherical Z-loss: de Brebisson & Vincent, "The Z-loss: a shift and scale invariant
classification loss belonging to the Spherical Family", arXiv:1604.08859.

With o the logits, z_k = (o_k - mean(o)) / std(o) (population std over classes),
loss = (1/a) softplus(a (b - z_y)). Not PaLM's auxiliary z-loss (that is ``ce_zloss``).
The loss has no probability model; calibration is computed from softmax(a z), which
ranks classes as the loss does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/classification",
    name="spherical_zloss",
    paper="The Z-loss: a shift and scale invariant classification loss belonging to the Spherical Family",
    arxiv="1604.08859",
    summary="Softplus of the z-normalised target logit: invariant to shifting and scaling the logits "
    "(a = 1, b = 3, not tuned).",
    a=1.0,
    b=3.0,
)


def z_scores(logits: torch.Tensor) -> torch.Tensor:
    mean = logits.mean(-1, keepdim=True)
    std = (logits.square().mean(-1, keepdim=True) - mean.square()).clamp_min(1e-12).sqrt()
    return (logits - mean) / std


@method.impl("reference")
def reference(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              y: torch.Tensor) -> torch.Tensor:
    a, b = method.extras["a"], method.extras["b"]
    z_y = z_scores(F.linear(features, weight, bias)).gather(1, y[:, None])[:, 0]
    return F.softplus(a * (b - z_y)) / a


def probabilities(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.softmax(method.extras["a"] * z_scores(F.linear(features, weight, bias)), dim=-1)


method.extras["probabilities"] = probabilities
