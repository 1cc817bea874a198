"""sampler/scoring: the per-example scores a data-selection sampler computes each step.

Samplers such as importance sampling, EL2N pruning, loss ranking or DSIR spend time on
scores before they select; this task measures that cost, reference against fast
implementations, as a kernel task (each output compared with the method's reference run
in float64). A grid point's ``inputs`` says which kind of score it is for, and a method
takes the points of its own kind (``Method(..., inputs=...)``); the other kind's points are
recorded ``skipped`` with that reason.

``inputs="head"`` (classifier-head scores, method ``last_layer_scores``): hidden states
h (N, H) ~ N(0, 1), head weight W (C, H) ~ N(0, 1/H) (logits of unit scale, as in
``loss/linear_cross_entropy``), bias b (C) ~ N(0, 0.1^2) and targets y (N). With
z = W h_i + b, p = softmax(z) and the residual r = p - onehot(y_i), the checked outputs are

    loss_i      = logsumexp(z) - z_{y_i}                       (per-example cross-entropy)
    el2n_i      = ||r||_2                                      (EL2N, Paul et al., arXiv:2107.07075)
    grad_norm_i = ||(dloss_i/dW, dloss_i/db)||_F = ||r||_2 sqrt(||h_i||^2 + 1)

(the per-example gradient w.r.t. the last layer is the outer product r h_i^T, plus r for the
bias: Katharopoulos & Fleuret's importance-sampling score, arXiv:1803.00942). No autograd
graph is built: scores are computed under ``no_grad``, the way a sampler computes them.

``inputs="ngrams"`` (DSIR features, method ``hashed_ngrams``): tokens (N, T) in [0, 256);
the output ``counts`` (N, buckets) holds each row's unigrams and bigrams hashed into
``buckets`` buckets exactly as ``effbench.methods.samplers.dsir.hashed_ngram_counts`` does.
Counts are integers and must match exactly; they do not depend on the dtype, so these
points run in float32 only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from effbench.registry import Skipped
from effbench.tasks import KernelTask

KINDS = ("head", "ngrams")
VOCAB = 256  # byte-level tokens, as the data_selection task's LM data


def _check_kind(point: dict[str, Any], dtype: torch.dtype, method: Any) -> str:
    kind = point["inputs"]
    wanted = method.extras.get("inputs")
    if wanted != kind:
        raise Skipped(f"method {method.name!r} scores {wanted!r} inputs; this point is for {kind!r} inputs")
    if kind == "ngrams" and dtype != torch.float32:
        raise Skipped("n-gram counts are integers and do not depend on the dtype: measured in float32 only")
    return kind


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    kind = _check_kind(point, dtype, method)
    gen = torch.Generator().manual_seed(seed)
    if kind == "ngrams":
        tokens = torch.randint(0, VOCAB, (point["N"], point["T"]), generator=gen)
        return {"tokens": tokens.to(device)}
    n, hidden, classes = point["N"], point["H"], point["C"]
    h = torch.randn(n, hidden, generator=gen)
    w = torch.randn(classes, hidden, generator=gen) / hidden**0.5
    b = 0.1 * torch.randn(classes, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    return {"h": h.to(device, dtype), "w": w.to(device, dtype), "b": b.to(device, dtype), "y": y.to(device)}


def outputs(fn: Callable[..., Any], inputs: dict[str, Any], point: dict[str, Any]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        if point["inputs"] == "ngrams":
            return {"counts": fn(inputs["tokens"], point["buckets"])}
        loss, el2n, grad_norm = fn(inputs["h"], inputs["w"], inputs["b"], inputs["y"])
        return {"loss": loss, "el2n": el2n, "grad_norm": grad_norm}


def _head(n: int, hidden: int, classes: int) -> dict[str, Any]:
    return {"inputs": "head", "N": n, "H": hidden, "C": classes}


def _ngrams(n: int, t: int, buckets: int) -> dict[str, Any]:
    return {"inputs": "ngrams", "N": n, "T": t, "buckets": buckets}


# Grids are append-only: add points, never change or remove one (results refer to their keys).

def work(inputs: dict[str, Any], point: dict[str, Any], method: Any) -> tuple[float, float]:
    """Head scores: read h, W and b, 2 N H C FLOPs (the logits; their softmax statistics are O(N C)). n-gram
    counts: read the tokens, write the N x buckets counts, no floating-point work."""
    if "tokens" in inputs:
        return float(inputs["tokens"].numel() * 8 + point["N"] * point["buckets"] * 4), 0.0
    h, w = inputs["h"], inputs["w"]
    moved = float((h.numel() + w.numel() + inputs["b"].numel()) * h.element_size())
    return moved, 2.0 * h.shape[0] * h.shape[1] * w.shape[0]

task = KernelTask(
    family="sampler",
    name="scoring",
    description="Per-example selection scores: classifier-head loss, EL2N and last-layer gradient norm; "
    "DSIR's hashed n-gram counts.",
    grids={
        "smoke": [
            _head(67, 24, 101),
            _head(130, 40, 1003),
            _ngrams(33, 29, 97),
            _ngrams(64, 64, 4096),
        ],
        "cpu": [
            # the reference materialises N x C x H per-example gradients: its cost bounds these sizes
            _head(1024, 256, 1000),
            _head(4096, 256, 1000),
            _head(1024, 128, 32000),
            _ngrams(4096, 128, 4096),
            _ngrams(4096, 128, 10000),
        ],
        "gpu": [
            _head(8192, 1024, 32000),
            _head(32768, 1024, 32000),
            _head(8192, 2048, 128256),
            _ngrams(16384, 512, 10000),
            _ngrams(65536, 256, 4096),
        ],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("float32", "bfloat16")},
    # seconds per case on the 2-core development CPU, measured 2026-12-06: smoke, a smoke run of each method
    # once; cpu: run 20261206T143038Z-117456bf, 188 s for 105 cases; gpu: not measured yet
    cost_s={"smoke": 0.07, "cpu": 1.8},
    sizes=("N", "H", "C", "T"),  # head points: N H C; n-gram points: N T
    work=work,
    make_inputs=make_inputs,
    outputs=outputs,
    tolerance={"float32": 1e-5, "bfloat16": 1e-2, "float64": 1e-12},
)
