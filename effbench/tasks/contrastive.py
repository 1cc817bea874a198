"""loss/contrastive: symmetric InfoNCE (the CLIP loss) over a batch of b paired embeddings.

Inputs: unit-norm image and text embeddings a, t (b, d) and a fixed logit scale s
(CLIP's learned temperature, 1/0.07, held constant here). With S = s a t^T (b x b),

    loss = 1/2 mean_i (logsumexp_j S_ij - S_ii) + 1/2 mean_j (logsumexp_i S_ij - S_jj).

Checked outputs: the loss, da and dt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from effbench.tasks import KernelTask, grad_outputs, leaf


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    b, d = point["b"], point["d"]
    a = torch.nn.functional.normalize(torch.randn(b, d, generator=gen), dim=-1)
    # paired texts lie near their images, so the loss is not at its random-batch value
    t = torch.nn.functional.normalize(a + 2.0 * torch.randn(b, d, generator=gen) / d**0.5, dim=-1)
    return {"a": a.to(device, dtype), "t": t.to(device, dtype)}


def outputs(fn: Callable[..., torch.Tensor], inputs: dict[str, Any], point: dict[str, Any]) -> dict[str, torch.Tensor]:
    a, t = leaf(inputs["a"]), leaf(inputs["t"])
    return grad_outputs(fn(a, t, point["scale"]), {"a": a, "t": t})



def work(inputs: dict[str, Any], point: dict[str, Any], method: Any) -> tuple[float, float]:
    """The least a forward + backward must do: read a and t, write their gradients, and 6 b^2 d FLOPs (the
    similarities 2 b^2 d, then da and dt 2 b^2 d each; the b x b matrix need never reach memory)."""
    a = inputs["a"]
    b, d = a.shape
    return 4.0 * a.numel() * a.element_size(), 6.0 * b * b * d

task = KernelTask(
    family="loss",
    name="contrastive",
    description="Symmetric InfoNCE / CLIP loss of b paired embeddings, forward and backward.",
    grids={
        "smoke": [{"b": 64, "d": 32, "scale": 14.285714}, {"b": 100, "d": 48, "scale": 14.285714}],
        "cpu": [{"b": 1024, "d": 512, "scale": 14.285714}, {"b": 4096, "d": 512, "scale": 14.285714},
                {"b": 8192, "d": 256, "scale": 14.285714}],
        "gpu": [{"b": 8192, "d": 768, "scale": 14.285714}, {"b": 32768, "d": 768, "scale": 14.285714},
                {"b": 32768, "d": 1024, "scale": 14.285714}],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("bfloat16",)},
    # seconds per case on the 2-core development CPU, measured 2026-12-06: smoke, a smoke run of each method
    # once; cpu: run 20261206T141236Z-ab82cf98, 93 s for 27 cases; gpu: not measured yet
    cost_s={"smoke": 0.17, "cpu": 3.5},
    sizes=("b", "b", "d"),
    work=work,
    make_inputs=make_inputs,
    outputs=outputs,
    tolerance={"float32": 1e-5, "bfloat16": 2e-2, "float16": 2e-3, "float64": 1e-12},
)
