"""loss/linear_cross_entropy: LM head + cross-entropy, mean over non-ignored tokens.

Inputs: hidden states x (N, D), classifier weight w (V, D), targets y (N) with a fraction
set to ``IGNORE_INDEX``. Checked outputs: the loss and its gradients dx, dw.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from effbench.tasks import KernelTask, grad_outputs, leaf

IGNORE_INDEX = -100


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    n, d, v = point["N"], point["D"], point["V"]
    x = torch.randn(n, d, generator=gen)
    # Logits of unit scale, as after a final norm: w ~ N(0, 1/D).
    w = torch.randn(v, d, generator=gen) / d**0.5
    y = torch.randint(0, v, (n,), generator=gen)
    ignored = torch.rand(n, generator=gen) < point.get("ignore_frac", 0.0)
    y[ignored] = IGNORE_INDEX
    return {"x": x.to(device, dtype), "w": w.to(device, dtype), "y": y.to(device)}


def outputs(fn: Callable[..., torch.Tensor], inputs: dict[str, Any], point: dict[str, Any]) -> dict[str, torch.Tensor]:
    x, w = leaf(inputs["x"]), leaf(inputs["w"])
    loss = fn(x, w, inputs["y"], ignore_index=IGNORE_INDEX)
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
        ],
        "cpu": [
            {"N": 1024, "D": 256, "V": 8192, "ignore_frac": 0.0},
            {"N": 4096, "D": 256, "V": 8192, "ignore_frac": 0.1},
            {"N": 4096, "D": 256, "V": 32000, "ignore_frac": 0.1},
        ],
        "gpu": [
            {"N": 8192, "D": 2048, "V": 32000, "ignore_frac": 0.0},
            {"N": 8192, "D": 4096, "V": 128256, "ignore_frac": 0.0},
            {"N": 8192, "D": 2304, "V": 256000, "ignore_frac": 0.0},  # Gemma-2-2B-like head
        ],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("bfloat16",)},
    make_inputs=make_inputs,
    outputs=outputs,
    tolerance={"float32": 1e-5, "bfloat16": 1e-2, "float16": 1e-3, "float64": 1e-12},
)
