"""Longformer attention: Beltagy et al., "Longformer: The Long-Document Transformer", arXiv:2004.05150.

The encoder pattern of the paper (section 3.1): a symmetric sliding window, each token
attending w/2 tokens on either side, |i - j| <= window // 2, plus "global attention" on a
few preselected tokens (here the first ``n_global``, e.g. [CLS] and a question), which
attend every token and are attended by every token:

    allowed(i, j) = |i - j| <= window // 2  or  i < n_global  or  j < n_global

Not causal. flash_attn has a symmetric window but no global rows or columns, so it is skipped.
"""

from __future__ import annotations

from typing import Any

from effbench.methods.attention._masked import MaskMod, need
from effbench.methods.attention._pattern import masked_pattern


def longformer_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    window, n_global = need(point, "window", "n_global")
    half = window // 2
    return lambda b, h, q_idx, kv_idx: ((q_idx - kv_idx).abs() <= half) | (q_idx < n_global) | (kv_idx < n_global)


method, lm = masked_pattern(
    "longformer",
    summary="Symmetric sliding window (window // 2 each side) plus n_global tokens attending and attended by all.",
    paper="Longformer: The Long-Document Transformer",
    arxiv="2004.05150",
    mod=longformer_mod,
    flash_attn="global-token",
)
longformer_mask = method.extras["mask"]  # (n, point, device) -> (N, N) bool, True = may attend
