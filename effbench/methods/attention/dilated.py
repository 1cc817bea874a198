"""Dilated sliding window: Beltagy et al., "Longformer: The Long-Document Transformer", arXiv:2004.05150.

Section 3.1, in the causal form the paper's autoregressive character-LM experiments use:
the window has gaps of size dilation - 1, so ``window`` keys span window * dilation
positions. Query i attends key j when

    j <= i,  (i - j) % dilation == 0,  (i - j) // dilation < window.

Positions of one residue class mod ``dilation`` only see each other, so the pattern is
``dilation`` independent causal windows of ``window`` keys over the strided subsequences:
the peers run exactly that (a reshape, then their sliding-window kernels), when N is a
multiple of the dilation.
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.methods.attention._masked import MaskMod, need
from effbench.methods.attention._pattern import masked_pattern
from effbench.registry import Skipped


def dilated_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    window, dilation = need(point, "window", "dilation")

    def mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        gap = q_idx - kv_idx
        return (gap >= 0) & (gap % dilation == 0) & (gap < window * dilation)

    return mod


def split_residues(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """(B, H, N, d) -> (B * dilation, N / dilation, H, d): one sequence per residue class, peer layout."""
    b, h, n, d = x.shape
    if n % dilation:
        raise Skipped(f"N = {n} is not a multiple of the dilation {dilation}: the residue classes are ragged")
    # position m * dilation + c is step m of class c
    return x.reshape(b, h, n // dilation, dilation, d).permute(0, 3, 2, 1, 4).reshape(b * dilation, n // dilation, h, d)


def merge_residues(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """Inverse of ``split_residues``: back to (B, H, N, d)."""
    bc, m, h, d = x.shape
    b = bc // dilation
    return x.reshape(b, dilation, m, h, d).permute(0, 3, 2, 1, 4).reshape(b, h, m * dilation, d)


def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
             point: dict[str, Any]) -> torch.Tensor:
    """memory_efficient_attention's causal local window over the strided subsequences."""
    from xformers.ops import memory_efficient_attention
    from xformers.ops.fmha.attn_bias import LocalAttentionFromBottomRightMask

    r = point["dilation"]
    bias = LocalAttentionFromBottomRightMask(window_left=point["window"] - 1, window_right=0)
    out = memory_efficient_attention(split_residues(q, r), split_residues(k, r), split_residues(v, r), attn_bias=bias)
    return merge_residues(out, r)


def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
               point: dict[str, Any]) -> torch.Tensor:
    """flash_attn_func's causal sliding window over the strided subsequences."""
    from flash_attn import flash_attn_func

    r = point["dilation"]
    out = flash_attn_func(split_residues(q, r), split_residues(k, r), split_residues(v, r), causal=True,
                          window_size=(point["window"] - 1, 0))
    return merge_residues(out, r)


method, lm = masked_pattern(
    "dilated",
    summary="Causal window of `window` keys taken every `dilation` positions (span window * dilation).",
    paper="Longformer: The Long-Document Transformer",
    arxiv="2004.05150",
    mod=dilated_mod,
    xformers=xformers,
    flash_attn=flash_attn,
)
dilated_mask = method.extras["mask"]  # (n, point, device) -> (N, N) bool, True = may attend
