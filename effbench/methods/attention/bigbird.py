"""BigBird attention: Zaheer et al., "Big Bird: Transformers for Longer Sequences", arXiv:2007.14062.

The blockified BIGBIRD-ITC pattern (section 2 and appendix D): the sequence is cut into
blocks of ``block`` tokens, and query block qb attends key block kb when

- kb is in the sliding window of 3 blocks, |qb - kb| <= 1;
- kb is one of the ``n_random_blocks`` blocks drawn for qb among those outside its window;
- or either token is global: the first ``n_global`` tokens attend and are attended by all.

Not causal. The random blocks come from a generator seeded by the grid point, so every
implementation, seed and run sees the same pattern (one draw shared by all heads).
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.methods.attention._masked import MaskMod, need, point_generator
from effbench.methods.attention._pattern import masked_pattern


def bigbird_blocks(n: int, point: dict[str, Any]) -> torch.Tensor:
    """(T, T) bool, T = ceil(N / block): the window and random key blocks of every query block."""
    block, n_random = need(point, "block", "n_random_blocks")
    t = -(-n // block)
    gen = point_generator(point, "bigbird")
    idx = torch.arange(t)
    allowed = (idx[:, None] - idx[None, :]).abs() <= 1
    for qb in range(t):
        outside = (~allowed[qb]).nonzero().flatten()
        picked = outside[torch.randperm(len(outside), generator=gen)[:n_random]]
        allowed[qb, picked] = True
    return allowed


def bigbird_mod(n: int, point: dict[str, Any], device: Any) -> MaskMod:
    block, n_global = need(point, "block", "n_global")
    blocks = bigbird_blocks(n, point).to(device)
    def mod(b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return blocks[q_idx // block, kv_idx // block] | (q_idx < n_global) | (kv_idx < n_global)

    return mod


method, lm = masked_pattern(
    "bigbird",
    summary="Blocks: a 3-block window, n_random_blocks seeded random blocks per query block, n_global global tokens.",
    paper="Big Bird: Transformers for Longer Sequences",
    arxiv="2007.14062",
    mod=bigbird_mod,
    flash_attn="random-block or global-token",
)
bigbird_mask = method.extras["mask"]  # (n, point, device) -> (N, N) bool, True = may attend
