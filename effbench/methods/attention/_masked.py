"""Implementations shared by every mask pattern (not a method: patterns import these).

``reference_attention`` is the definition: fp32 (or wider) scores, the mask applied as
-inf, softmax, then the weighted sum of values. ``sdpa_attention`` hands the same
boolean mask to torch's scaled_dot_product_attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    compute = torch.promote_types(q.dtype, torch.float32)
    scale = q.shape[-1] ** -0.5
    scores = (q.to(compute) @ k.to(compute).transpose(-2, -1)) * scale  # (B, H, N, N)
    scores = scores.masked_fill(~mask, float("-inf"))
    return (torch.softmax(scores, dim=-1) @ v.to(compute)).to(q.dtype)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def full_mask(n: int, point: dict, device: str) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device)
