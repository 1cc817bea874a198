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
from effbench.tasks._tokens import goldfish_mask

method = Method(
    task="loss/memorization",
    name="goldfish",
    paper="Be like a Goldfish, Don't Memorize! Mitigating Memorization in Generative LLMs",
    arxiv="2406.10209",
    summary="Drop 1 in k tokens from the loss, chosen by a hash of the preceding h tokens (k = 4, h = 13).",
    k=4,
    h=13,
)


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
