"""loss/linear_cross_entropy: LM head + cross-entropy, mean over non-ignored tokens.

Inputs: hidden states x (N, D), classifier weight w (V, D), targets y (N) with a fraction
set to ``IGNORE_INDEX``. Checked outputs: the loss and its gradients dx, dw.

Options a grid point may set, passed to every implementation only when set:
``z_loss`` (PaLM's lambda * lse^2), ``label_smoothing``, and ``goldfish_k`` / ``goldfish_h``
(Hans et al., "Be like a Goldfish, Don't Memorize!", arXiv:2406.10209: targets whose
preceding h tokens hash to 0 mod k are dropped from the loss, applied here to the
targets before any implementation sees them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from effbench.methods.losses.goldfish import goldfish_mask
from effbench.registry import Skipped
from effbench.tasks import KernelTask, grad_outputs, leaf

IGNORE_INDEX = -100


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    n, d, v = point["N"], point["D"], point["V"]
    x = torch.randn(n, d, generator=gen)
    # Logits of unit scale, as after a final norm: w ~ N(0, 1/D).
    w = torch.randn(v, d, generator=gen) / d**0.5
    y = torch.randint(0, v, (n,), generator=gen)
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
        ],
        "cpu": [
            {"N": 1024, "D": 256, "V": 8192, "ignore_frac": 0.0},
            {"N": 4096, "D": 256, "V": 8192, "ignore_frac": 0.1},
            {"N": 4096, "D": 256, "V": 32000, "ignore_frac": 0.1},
            {"N": 2048, "D": 256, "V": 32000, "ignore_frac": 0.0, "z_loss": 1e-4, "label_smoothing": 0.1,
             "goldfish_k": 4},
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
        ],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("bfloat16",)},
    # seconds per case on the 2-core development CPU, measured 2026-12-06: smoke, a smoke run of each method
    # once; cpu: run 20261206T140913Z-35bd78a0, 199 s for 84 cases; gpu: not measured yet
    # gpu: a guess, not a measurement (no GPU has run this grid): the float64 truth and torch.compile dominate
    cost_s={"smoke": 0.17, "cpu": 2.4, "gpu": 30.0},
    make_inputs=make_inputs,
    outputs=outputs,
    tolerance={"float32": 1e-5, "bfloat16": 1e-2, "float16": 1e-3, "float64": 1e-12},
)
