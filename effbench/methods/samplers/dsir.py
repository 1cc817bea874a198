"""DSIR, data selection with importance resampling: Xie, Santurkar, Ma & Liang, "Data Selection for
Language Models via Importance Resampling", arXiv:2302.03169.

Each sequence becomes hashed n-gram counts (its unigrams and bigrams, hashed into ``buckets``
buckets). Two bag-of-n-grams models are fitted by counting, with add-one smoothing: one on the
target sample (``Dataset.x_target``), one on the raw training split. An example's log
importance weight is ``sum_b count_b (log p_target(b) - log p_raw(b))``, and ``keep`` of the
training split is resampled without replacement in proportion to the weights (Gumbel top-k,
seeded). Each step then trains on up to k uniformly chosen kept candidates of the pool. The
featurisation and resampling happen on the first step, inside the timed region.
"""

from __future__ import annotations

import torch

from effbench.methods.samplers._pruning import among_kept
from effbench.plugs import CandidatePool
from effbench.registry import Method, Skipped

method = Method(
    task="sampler/data_selection",
    name="dsir",
    paper="Data Selection for Language Models via Importance Resampling",
    arxiv="2302.03169",
    summary="Resample the training set toward a target sample by hashed n-gram importance weights.",
    buckets=4096,
    keep=0.5,
)

_MIX = 0x9E3779B1  # Knuth's multiplicative hash constant: spreads n-gram ids over the buckets


def hashed_ngram_counts(tokens: torch.Tensor, buckets: int, vocab: int = 256) -> torch.Tensor:
    """(N, buckets) counts of each row's unigrams and bigrams, each n-gram hashed to one bucket."""
    tokens = tokens.long().cpu()
    unigrams = tokens
    bigrams = vocab + tokens[:, :-1] * vocab + tokens[:, 1:]  # ids apart from the unigrams'
    ids = torch.cat([unigrams, bigrams], dim=1)
    hashed = (ids * _MIX) % (1 << 32) % buckets
    counts = torch.zeros(len(tokens), buckets, dtype=torch.float64)
    counts.scatter_add_(1, hashed, torch.ones_like(hashed, dtype=torch.float64))
    return counts


def log_importance_weights(raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``counts @ (log p_target - log p_raw)`` with add-one smoothed bucket distributions."""
    log_p_target = torch.log((target.sum(0) + 1) / (target.sum() + target.shape[1]))
    log_p_raw = torch.log((raw.sum(0) + 1) / (raw.sum() + raw.shape[1]))
    return raw @ (log_p_target - log_p_raw)


def resample(log_weights: torch.Tensor, n_keep: int, generator: torch.Generator) -> torch.Tensor:
    """Bool mask of ``n_keep`` rows drawn without replacement with probability ~ weight (Gumbel top-k)."""
    uniform = torch.rand(len(log_weights), generator=generator, dtype=torch.float64).clamp_min(1e-300)
    gumbel = -torch.log(-torch.log(uniform))
    mask = torch.zeros(len(log_weights), dtype=torch.bool)
    mask[torch.topk(log_weights + gumbel, n_keep).indices] = True
    return mask


@method.impl("reference")
def reference(pool: CandidatePool, k: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    data = pool.data
    if pool.kind != "lm" or data is None or data.x_target is None:
        raise Skipped("DSIR needs token data with a target sample (Dataset.x_target)")
    if "kept" not in pool.memory:
        buckets = method.extras["buckets"]
        raw = hashed_ngram_counts(data.x_train, buckets, data.n_classes)
        target = hashed_ngram_counts(data.x_target, buckets, data.n_classes)
        n_keep = max(1, int(method.extras["keep"] * len(raw)))
        pool.memory["kept"] = resample(log_importance_weights(raw, target), n_keep, generator)
    return among_kept(pool, pool.memory["kept"], k, generator)
