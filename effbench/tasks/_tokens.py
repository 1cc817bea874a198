"""Token masks that a task's inputs and a method both need (tasks are the lower layer: methods import them here).

``goldfish_mask`` is the Goldfish loss's hash (Hans et al., arXiv:2406.10209; ``methods/losses/goldfish.py``):
``loss/linear_cross_entropy``'s ``goldfish_k`` points drop the same labels from their inputs.
"""

from __future__ import annotations

import torch


def goldfish_mask(tokens: torch.Tensor, k: int, h: int) -> torch.Tensor:
    """True where the goldfish loss drops a token: a hash of the h preceding tokens is 0 mod k.

    The first h tokens (no full context) are always kept. The hash is a polynomial over the
    window, mod the Mersenne prime 2^31 - 1, then mixed, so equal contexts drop equally.
    """
    drop = torch.zeros(tokens.shape, dtype=torch.bool, device=tokens.device)
    if tokens.numel() <= h:
        return drop
    prime = 2**31 - 1
    powers = torch.tensor([pow(1_000_003, j, prime) for j in range(h)], dtype=torch.int64, device=tokens.device)
    windows = tokens.long().clamp_min(0).unfold(0, h, 1)[:-1]  # (N - h, h): the h tokens before i = h..N-1
    hashed = (windows * powers).sum(-1) % prime  # < 2^31 * 2^21 * h: no int64 overflow
    hashed = (hashed * 2_654_435_761) % prime  # Knuth's multiplicative mix
    drop[h:] = hashed % k == 0
    return drop
