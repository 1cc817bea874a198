"""Goldfish loss: Hans et al., "Be like a Goldfish, Don't Memorize! Mitigating Memorization in
Generative LLMs", arXiv:2406.10209.

A token is left out of the next-token loss when a hash of the h tokens before it is 0
mod k (k = 4, h = 13), so about 1 in k tokens is never trained on, the same ones every
time the same text is seen, and a verbatim copy of a training sequence cannot be
learned. Here the method is a target transform in the loss/memorization workload.
"""

from __future__ import annotations

import torch

from effbench.data import IGNORE
from effbench.registry import Method

method = Method(
    task="loss/memorization",
    name="goldfish",
    paper="Be like a Goldfish, Don't Memorize! Mitigating Memorization in Generative LLMs",
    arxiv="2406.10209",
    summary="Drop 1 in k tokens from the loss, chosen by a hash of the preceding h tokens (k = 4, h = 13).",
    k=4,
    h=13,
)


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


@method.impl("reference")
def reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Next-token targets with the goldfish-dropped positions set to IGNORE (per sequence)."""
    k, h = method.extras["k"], method.extras["h"]
    out = y.clone()
    for row in range(y.shape[0]):
        stream = torch.cat([x[row, :1], y[row]])  # the row's text: y[i] is stream[i + 1]
        drop = goldfish_mask(stream, k, h)[1:]
        out[row][drop] = IGNORE
    return out
