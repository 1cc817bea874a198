"""Document masking of packed sequences: Krell et al., "Efficient Sequence Packing without
Cross-contamination: Accelerating Large Language Models without Impacting Performance",
arXiv:2107.02027.

Several documents are packed back to back into one sequence of N tokens; a token attends
only earlier tokens of its own document, a block-diagonal causal mask:

    allowed(i, j) = doc(i) == doc(j)  and  j <= i

The ``n_docs`` document lengths come from a generator seeded by the grid point: the
n_docs - 1 cut points are distinct positions in 1 .. N - 1 drawn uniformly, so every
document has at least one token. Every row of the batch packs the same documents.
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.methods.attention._masked import MaskMod, need, per_mask, point_generator
from effbench.methods.attention._pattern import masked_pattern
from effbench.registry import Skipped


def document_lengths(n: int, point: dict[str, Any]) -> list[int]:
    (n_docs,) = need(point, "n_docs")
    if not 1 <= n_docs <= n:
        raise Skipped(f"n_docs = {n_docs} documents cannot be packed into N = {n} tokens")
    cuts = (torch.randperm(n - 1, generator=point_generator(point, "document"))[: n_docs - 1] + 1).sort().values
    edges = [0, *cuts.tolist(), n]
    return [end - start for start, end in zip(edges, edges[1:], strict=False)]


def document_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    lengths = document_lengths(n, point)
    doc = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(device)
    return lambda b, h, q_idx, kv_idx: (doc[q_idx] == doc[kv_idx]) & (kv_idx <= q_idx)


def _packed(x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, d) -> (B * N, H, d): the batch's rows one after another, as varlen kernels take them."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b * n, h, d)


def _unpacked(x: torch.Tensor, b: int) -> torch.Tensor:
    return x.reshape(b, -1, *x.shape[1:]).transpose(1, 2)


def xformers(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
             point: dict[str, Any]) -> torch.Tensor:
    """BlockDiagonalCausalMask over all B x n_docs documents, as one packed batch of 1."""
    from xformers.ops import memory_efficient_attention
    from xformers.ops.fmha.attn_bias import BlockDiagonalCausalMask

    b, n = q.shape[0], q.shape[2]
    bias = per_mask("xformers", mask, lambda: BlockDiagonalCausalMask.from_seqlens(document_lengths(n, point) * b))
    out = memory_efficient_attention(_packed(q)[None], _packed(k)[None], _packed(v)[None], attn_bias=bias)
    return _unpacked(out[0], b)


def flash_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *,
               point: dict[str, Any]) -> torch.Tensor:
    """flash_attn_varlen_func, causal, with the documents' cumulative lengths."""
    from flash_attn import flash_attn_varlen_func

    b, n = q.shape[0], q.shape[2]

    def offsets() -> tuple[torch.Tensor, int]:
        lengths = document_lengths(n, point) * b
        cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device=q.device)
        return cu, max(lengths)

    cu, longest = per_mask("flash_attn", mask, offsets)
    out = flash_attn_varlen_func(_packed(q), _packed(k), _packed(v), cu, cu, longest, longest, causal=True)
    return _unpacked(out, b)


method, lm = masked_pattern(
    "document",
    summary="Packed sequence of n_docs seeded-length documents: causal within a document, nothing across.",
    paper="Efficient Sequence Packing without Cross-contamination: Accelerating Large Language Models "
          "without Impacting Performance",
    arxiv="2107.02027",
    mod=document_mod,
    xformers=xformers,
    flash_attn=flash_attn,
)
document_mask = method.extras["mask"]  # (n, point, device) -> (N, N) bool, True = may attend
