"""Harmonic loss: Baek et al., "Harmonic Loss Trains Interpretable AI Models", arXiv:2502.01628.

Logits are replaced by Euclidean distances to class centres, d_c = ||w_c - h|| (the head's
weight rows; its bias is unused), and p_c = d_c^-n / sum_j d_j^-n ("harmonic max"), so
loss = -log p_y = cross-entropy on the scores -n log d_c. Predictions follow the same
probabilities (nearest centre wins). The harmonic exponent n = sqrt(H) for H features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from effbench.registry import Method

method = Method(
    task="loss/classification",
    name="harmonic",
    paper="Harmonic Loss Trains Interpretable AI Models",
    arxiv="2502.01628",
    summary="Class probabilities from inverse powers of distances to class centres instead of a softmax of logits.",
)


def harmonic_scores(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """-n log d_c, with d_c^2 = ||h||^2 - 2 w_c.h + ||w_c||^2 (a matmul, no (N, C, H) tensor)."""
    d2 = features.square().sum(-1, keepdim=True) - 2 * features @ weight.T + weight.square().sum(-1)
    n = features.shape[-1] ** 0.5
    return -0.5 * n * d2.clamp_min(1e-12).log()


@method.impl("reference")
def reference(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(harmonic_scores(features, weight), y, reduction="none")


def probabilities(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.softmax(harmonic_scores(features, weight), dim=-1)


method.extras["probabilities"] = probabilities
