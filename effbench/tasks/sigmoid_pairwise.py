"""loss/sigmoid_pairwise: SigLIP's pairwise sigmoid loss with a learnable temperature and bias.

Inputs: unit-norm embeddings a, t (b, d), log-temperature t' and bias beta (scalars, at
SigLIP's initialisation log 10 and -10). With logits l_ij = exp(t') a_i . t_j + beta and
labels z_ij = +1 on the diagonal, -1 elsewhere:

    loss = -(1/b) sum_ij log sigmoid(z_ij l_ij).

Checked outputs: the loss and the gradients of a, t, t' and beta.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from effbench.tasks import KernelTask, grad_outputs, leaf


def make_inputs(point: dict[str, Any], dtype: torch.dtype, device: str, seed: int, method: Any) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    b, d = point["b"], point["d"]
    a = torch.nn.functional.normalize(torch.randn(b, d, generator=gen), dim=-1)
    t = torch.nn.functional.normalize(a + 2.0 * torch.randn(b, d, generator=gen) / d**0.5, dim=-1)
    log_temp = torch.tensor(math.log(10.0)) + 0.1 * torch.randn((), generator=gen)
    bias = torch.tensor(-10.0) + torch.randn((), generator=gen)
    return {"a": a.to(device, dtype), "t": t.to(device, dtype), "log_temp": log_temp.to(device, dtype),
            "bias": bias.to(device, dtype)}


def outputs(fn: Callable[..., torch.Tensor], inputs: dict[str, Any], point: dict[str, Any]) -> dict[str, torch.Tensor]:
    leaves = {k: leaf(inputs[k]) for k in ("a", "t", "log_temp", "bias")}
    return grad_outputs(fn(**leaves), leaves)



def work(inputs: dict[str, Any], point: dict[str, Any], method: Any) -> tuple[float, float]:
    """As InfoNCE's: read a and t, write their gradients, 6 b^2 d FLOPs (logits, then da and dt)."""
    a = inputs["a"]
    b, d = a.shape
    return 4.0 * a.numel() * a.element_size(), 6.0 * b * b * d

task = KernelTask(
    family="loss",
    name="sigmoid_pairwise",
    description="SigLIP pairwise sigmoid loss with learnable temperature and bias, forward and backward.",
    grids={
        "smoke": [{"b": 64, "d": 32}, {"b": 100, "d": 48}],
        "cpu": [{"b": 1024, "d": 512}, {"b": 4096, "d": 512}, {"b": 8192, "d": 256}],
        "gpu": [{"b": 8192, "d": 768}, {"b": 32768, "d": 768}, {"b": 32768, "d": 1024}],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("bfloat16",)},
    # seconds per case on the 2-core development CPU, measured 2026-12-06: smoke, a smoke run of each method
    # once; cpu: run 20261206T141412Z-01f3f6a0, 86 s for 27 cases; gpu: not measured yet
    cost_s={"smoke": 0.17, "cpu": 3.2},
    sizes=("b", "b", "d"),
    work=work,
    make_inputs=make_inputs,
    outputs=outputs,
    tolerance={"float32": 1e-5, "bfloat16": 2e-2, "float16": 2e-3, "float64": 1e-12},
)
