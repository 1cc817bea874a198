"""loss/linear_cross_entropy: LM head + cross-entropy, mean over non-ignored tokens.

Inputs: hidden states x (N, D), classifier weight w (V, D), targets y (N) with a fraction
set to ``IGNORE_INDEX``. Checked outputs: the loss and its gradients dx, dw.

Logits: by default w ~ N(0, 1/D), logits of unit scale with a nearly flat softmax (entropy ~ log V - 1/2)
and uniformly random targets. A point with ``softmax="trained"`` makes them look like a trained LM's:
the softmax's mean entropy is ``TRAINED_ENTROPY`` (2.5 nats; trained LMs' next-token entropy is typically
2-3 nats) and each target is drawn from it, so the loss is about that entropy, as in training. The
inputs get it by scaling w so that the logits (Gaussian, x ~ N(0, 1)) have the std whose softmax has that
entropy (``logit_scale``, found by bisection on Gaussian samples). This matters to a kernel that skips
work where the softmax is small (cut-cross-entropy's gradient filter): a flat softmax lets it skip
almost every block.

Options a grid point may set, passed to every implementation only when set:
``z_loss`` (PaLM's lambda * lse^2), ``label_smoothing``, and ``goldfish_k`` / ``goldfish_h``
(Hans et al., "Be like a Goldfish, Don't Memorize!", arXiv:2406.10209: targets whose
preceding h tokens hash to 0 mod k are dropped from the loss, applied here to the
targets before any implementation sees them).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from effbench.registry import Skipped
from effbench.tasks import KernelTask, grad_outputs, leaf
from effbench.tasks._tokens import goldfish_mask

IGNORE_INDEX = -100
TRAINED_ENTROPY = 2.5  # nats: the mean softmax entropy of softmax="trained" points
SOFTMAXES = ("flat", "trained")


@functools.lru_cache(maxsize=16)
def logit_scale(v: int, entropy: float = TRAINED_ENTROPY) -> float:
    """The std s of Gaussian logits over ``v`` classes whose softmax has mean entropy ``entropy`` (nats), by
    bisection on 16 rows of standard normal samples (a fixed seed: the same s for every case)."""
    g = torch.randn(16, v, generator=torch.Generator().manual_seed(0))
    lo, hi = 0.0, 50.0
    for _ in range(40):  # the entropy falls as s grows
        s = (lo + hi) / 2
        logp = torch.log_softmax(s * g, dim=-1)
        if -(logp.exp() * logp).sum(-1).mean().item() > entropy:
            lo = s
        else:
            hi = s
    return (lo + hi) / 2


def _sampled_targets(x: torch.Tensor, w: torch.Tensor, device: str, seed: int) -> torch.Tensor:
    """One target per row drawn from softmax(x w^T), computed on ``device`` in row blocks (a block's logits
    at most 2^26 floats), with a generator of that device seeded by ``seed``."""
    xd, wd = x.to(device), w.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    rows = max(1, (1 << 26) // w.shape[0])
    picks = [torch.multinomial(torch.softmax(xd[i:i + rows] @ wd.T, dim=-1), 1, generator=gen).squeeze(1)
             for i in range(0, x.shape[0], rows)]
    return torch.cat(picks).cpu()


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    n, d, v = point["N"], point["D"], point["V"]
    softmax = point.get("softmax", "flat")
    if softmax not in SOFTMAXES:
        raise ValueError(f"unknown softmax {softmax!r}; valid: {', '.join(SOFTMAXES)}")
    x = torch.randn(n, d, generator=gen)
    # flat: logits of unit scale, as after a final norm, w ~ N(0, 1/D); trained: of the std whose softmax has
    # TRAINED_ENTROPY (|x|^2 ~ D, so x w_v ~ N(0, s^2))
    w = torch.randn(v, d, generator=gen) * ((logit_scale(v) if softmax == "trained" else 1.0) / d**0.5)
    y = torch.randint(0, v, (n,), generator=gen)
    if softmax == "trained":
        y = _sampled_targets(x, w, device, seed)
    if point.get("goldfish_k"):
        y[goldfish_mask(y, point["goldfish_k"], point.get("goldfish_h", 13))] = IGNORE_INDEX
    ignored = torch.rand(n, generator=gen) < point.get("ignore_frac", 0.0)
    y[ignored] = IGNORE_INDEX
    return {"x": x.to(device, dtype), "w": w.to(device, dtype), "y": y.to(device)}


OPTIONS = ("z_loss", "label_smoothing")


def _accepts(fn: Callable[..., Any], names: list[str]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True  # no signature to read: let the call decide
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return True
    return all(name in params for name in names)


def outputs(fn: Callable[..., torch.Tensor], inputs: dict[str, Any], point: dict[str, Any]) -> dict[str, torch.Tensor]:
    x, w = leaf(inputs["x"]), leaf(inputs["w"])
    options = {k: point[k] for k in OPTIONS if point.get(k)}  # passed only when set
    if options and not _accepts(fn, list(options)):
        raise Skipped(f"this implementation takes no {', '.join(options)} option")
    loss = fn(x, w, inputs["y"], ignore_index=IGNORE_INDEX, **options)
    return grad_outputs(loss, {"x": x, "w": w})


# Grids are append-only: add points, never change or remove one (results refer to their keys).

def work(inputs: dict[str, Any], point: dict[str, Any], method: Any) -> tuple[float, float]:
    """The least a forward + backward must do: read x and w, write dx and dw (the N x V logits need never reach
    memory), and 6 N V D FLOPs (the logits 2 N V D, then dx and dw 2 N V D each)."""
    x, w = inputs["x"], inputs["w"]
    (n, d), v = x.shape, w.shape[0]
    return 2.0 * (x.numel() + w.numel()) * x.element_size() + inputs["y"].numel() * 8, 6.0 * n * v * d

task = KernelTask(
    family="loss",
    name="linear_cross_entropy",
    description="LM head matmul + cross-entropy (mean over non-ignored targets), forward and backward.",
    grids={
        "smoke": [
            {"N": 64, "D": 32, "V": 1001, "ignore_frac": 0.0},
            {"N": 96, "D": 48, "V": 2003, "ignore_frac": 0.1},
            {"N": 80, "D": 40, "V": 1500, "ignore_frac": 0.0, "z_loss": 1e-4, "label_smoothing": 0.1,
             "goldfish_k": 4},
            {"N": 64, "D": 32, "V": 1001, "ignore_frac": 0.1, "softmax": "trained"},
        ],
        "cpu": [
            {"N": 1024, "D": 256, "V": 8192, "ignore_frac": 0.0},
            {"N": 4096, "D": 256, "V": 8192, "ignore_frac": 0.1},
            {"N": 4096, "D": 256, "V": 32000, "ignore_frac": 0.1},
            {"N": 2048, "D": 256, "V": 32000, "ignore_frac": 0.0, "z_loss": 1e-4, "label_smoothing": 0.1,
             "goldfish_k": 4},
            {"N": 4096, "D": 256, "V": 32000, "ignore_frac": 0.1, "softmax": "trained"},
        ],
        "gpu": [
            {"N": 8192, "D": 2048, "V": 32000, "ignore_frac": 0.0},
            {"N": 8192, "D": 4096, "V": 128256, "ignore_frac": 0.0},
            {"N": 8192, "D": 2304, "V": 256000, "ignore_frac": 0.0},  # Gemma-2-2B-like head
            {"N": 8192, "D": 2048, "V": 128256, "ignore_frac": 0.0},
            {"N": 8192, "D": 4096, "V": 32000, "ignore_frac": 0.0},
            {"N": 8192, "D": 2304, "V": 256000, "ignore_frac": 0.0, "z_loss": 1e-4, "label_smoothing": 0.1,
             "goldfish_k": 4},
            # the rest of D in {2048, 2304, 4096} x V in {32000, 128256, 256000}
            {"N": 8192, "D": 2048, "V": 256000, "ignore_frac": 0.0},
            {"N": 8192, "D": 2304, "V": 32000, "ignore_frac": 0.0},
            {"N": 8192, "D": 2304, "V": 128256, "ignore_frac": 0.0},
            {"N": 8192, "D": 4096, "V": 256000, "ignore_frac": 0.0},
            # a trained LM's softmax (entropy 2.5 nats, targets drawn from it): what a gradient filter meets
            {"N": 8192, "D": 2304, "V": 256000, "ignore_frac": 0.0, "softmax": "trained"},
            {"N": 8192, "D": 4096, "V": 128256, "ignore_frac": 0.0, "softmax": "trained"},
        ],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("bfloat16",)},
    # seconds per case on the 2-core development CPU, measured 2026-12-06: smoke, a smoke run of each method
    # once; cpu: run 20261206T140913Z-35bd78a0, 199 s for 84 cases; gpu: not measured yet
    # gpu: a guess, not a measurement (no GPU has run this grid): the float64 truth and torch.compile dominate
    cost_s={"smoke": 0.17, "cpu": 2.4, "gpu": 30.0},
    sizes=("N", "D", "V"),
    work=work,
    make_inputs=make_inputs,
    outputs=outputs,
    tolerance={"float32": 1e-5, "bfloat16": 1e-2, "float16": 1e-3, "float64": 1e-12},
)
