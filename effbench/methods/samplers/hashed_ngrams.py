"""Hashed n-gram features, DSIR's featurisation: Xie, Santurkar, Ma & Liang, "Data Selection for
Language Models via Importance Resampling", arXiv:2302.03169.

Each token row becomes the (buckets,) counts of its unigrams and bigrams, each n-gram id
hashed to one bucket, ``(id * 0x9E3779B1) mod 2^32 mod buckets`` with bigram ids
``vocab + a * vocab + b`` apart from the unigrams' (exactly
``effbench.methods.samplers.dsir.hashed_ngram_counts``, which the data-selection sampler
runs). Every implementation returns the (N, buckets) count matrix; counts must match exactly.

- ``reference``: DSIR's own function: one ``scatter_add_`` into float64 counts, on the CPU
  (tokens on a GPU are copied to the host first, as DSIR does), returned as fp32 like every
  implementation's (the task's outputs have one dtype; counts below 2^24 are exact in fp32).
- ``bincount``: the same hashes offset by ``row * buckets`` and counted by one flat
  ``torch.bincount`` on the tokens' device; fp32 counts.
- ``triton``: an atomic-add histogram kernel (``effbench.kernels.sample_scores``); fp32 counts.
"""

from __future__ import annotations

import torch

from effbench.methods.samplers.dsir import _MIX, hashed_ngram_counts
from effbench.registry import Method

method = Method(
    task="sampler/scoring",
    name="hashed_ngrams",
    paper="Data Selection for Language Models via Importance Resampling",
    arxiv="2302.03169",
    summary="DSIR's hashed unigram + bigram count features of token rows; implementations differ in how they "
    "count (scatter-add on the CPU, one flat bincount, an atomic-add kernel).",
    inputs="ngrams",
)


@method.impl("reference")
def reference(tokens: torch.Tensor, buckets: int, vocab: int = 256) -> torch.Tensor:
    return hashed_ngram_counts(tokens, buckets, vocab).to(torch.float32)


@method.impl("bincount")
def bincount(tokens: torch.Tensor, buckets: int, vocab: int = 256) -> torch.Tensor:
    tokens = tokens.long()
    n = tokens.shape[0]
    ids = torch.cat([tokens, vocab + tokens[:, :-1] * vocab + tokens[:, 1:]], dim=1)
    hashed = (ids * _MIX) % (1 << 32) % buckets
    flat = hashed + torch.arange(n, device=tokens.device)[:, None] * buckets
    counts = torch.bincount(flat.flatten(), minlength=n * buckets)
    return counts.view(n, buckets).to(torch.float32)


@method.impl("triton", needs=("triton",))
def triton_counts(tokens: torch.Tensor, buckets: int, vocab: int = 256, **blocks: int) -> torch.Tensor:
    from effbench.kernels.sample_scores import ngram_counts

    return ngram_counts(tokens, buckets, vocab, _MIX, **blocks)
