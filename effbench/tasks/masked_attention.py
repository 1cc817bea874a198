"""attention/masked_attention: softmax(q k^T / sqrt(d) + mask) v for one mask pattern per method.

Inputs q, k, v of shape (B, H, N, d) and a cotangent for the output; the pattern's
boolean mask (N, N), True where a query may attend a key, is built by the method
(``method.extras["mask"](n, point, device)``) outside the timed region. Checked outputs:
the attention output and dq, dk, dv.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from effbench.tasks import KernelTask, grad_outputs, leaf


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    shape = (point["B"], point["H"], point["N"], point["d"])
    q, k, v, grad_out = (torch.randn(shape, generator=gen).to(device, dtype) for _ in range(4))
    mask = method.extras["mask"](point["N"], point, device)
    return {"q": q, "k": k, "v": v, "grad_out": grad_out, "mask": mask}


def outputs(fn: Callable[..., torch.Tensor], inputs: dict[str, Any], point: dict[str, Any]) -> dict[str, torch.Tensor]:
    q, k, v = leaf(inputs["q"]), leaf(inputs["k"]), leaf(inputs["v"])
    out = fn(q, k, v, inputs["mask"])
    return grad_outputs(out, {"q": q, "k": k, "v": v}, grad_out=inputs["grad_out"])


task = KernelTask(
    family="attention",
    name="masked_attention",
    description="Attention with a mask pattern, forward and backward; window = sliding-window width.",
    grids={
        "smoke": [{"B": 1, "H": 2, "N": 96, "d": 16, "window": 32}, {"B": 2, "H": 2, "N": 200, "d": 32, "window": 48}],
        "cpu": [
            {"B": 1, "H": 4, "N": 512, "d": 64, "window": 128},
            {"B": 1, "H": 4, "N": 1024, "d": 64, "window": 128},
            {"B": 1, "H": 4, "N": 2048, "d": 64, "window": 256},
        ],
        "gpu": [
            {"B": 1, "H": 16, "N": 1024, "d": 64, "window": 256},
            {"B": 1, "H": 16, "N": 4096, "d": 128, "window": 512},
            {"B": 1, "H": 16, "N": 16384, "d": 128, "window": 1024},
        ],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("bfloat16",)},
    make_inputs=make_inputs,
    outputs=outputs,
    tolerance={"float32": 1e-5, "bfloat16": 2e-2, "float16": 2e-3, "float64": 1e-12},
)
