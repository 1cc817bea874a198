"""loss/memorization: does a loss stop a model from memorising text it sees over and over?

A tiny byte-level transformer LM trains on a small fixed set of standard-library byte
sequences (every step sees the whole set), with the method deciding which next-token
targets count (``Plugs.targets``). Measured on the final model:

- ``extraction_rate``: fraction of training sequences whose second half the model
  reproduces exactly by greedy decoding from the first half (lower = less memorised);
- ``token_match``: fraction of those continuation tokens reproduced;
- ``final_loss``: held-out next-byte loss (the price of the method), and
  ``final_metric``: held-out next-byte accuracy.

There is no target: the claim is about what is memorised at the end of the budget,
compared with standard cross-entropy across seeds.
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.data import Dataset
from effbench.metrics import Metric
from effbench.plugs import Plugs, adamw
from effbench.registry import Impl, Method
from effbench.tasks import WORKLOAD_METRICS, WorkloadOutcome, WorkloadTask
from effbench.workloads import dataset, run_workload


@torch.no_grad()
def extraction(model: torch.nn.Module, data: Dataset) -> dict[str, float]:
    """Greedy-decode the second half of every training sequence from its first half."""
    model.eval()
    tokens = torch.cat([data.x_train[:, :1], data.y_train], dim=1)  # the full training text per row
    half = tokens.shape[1] // 2
    generated = tokens[:, :half]
    for _ in range(tokens.shape[1] - half):
        next_token = model(generated)[:, -1].argmax(-1, keepdim=True)
        generated = torch.cat([generated, next_token], dim=1)
    model.train()
    match = generated[:, half:] == tokens[:, half:]
    return {"extraction_rate": float(match.all(dim=1).float().mean()), "token_match": float(match.float().mean())}


def run(
    method: Method, impl: Impl, point: dict[str, Any], seed: int, device: str, dtype: torch.dtype
) -> WorkloadOutcome:
    plugs = Plugs(optimizer=adamw, targets=impl.fn)
    return run_workload(point, seed, plugs, ("memorization", method.name, impl.name), device, final=extraction)


def _point(model: str, sequences: int, steps: int) -> dict[str, Any]:
    return {"data": "stdlib_memorize", "model": model, "sequences": sequences, "steps": steps, "batch": sequences,
            "eval_every": steps // 5, "lr": 3e-3}


task = WorkloadTask(
    family="loss",
    name="memorization",
    description="Repeated training on a few sequences: exact-match extraction rate vs held-out loss.",
    grids={
        "smoke": [_point("lm_nano", 32, 40)],
        "cpu": [_point("lm_nano", 32, 400)],
        "gpu": [_point("lm_tiny", 32, 1000)],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("float32",)},
    # seconds per case on the 2-core development CPU; smoke: measured 2026-12-06 (a smoke run of each
    # method once); cpu: run 20261123T015556Z's training wall times; gpu: not measured yet
    cost_s={"smoke": 1.6, "cpu": 16},
    run=run,
    prepare=lambda point: dataset(point["data"]),
    baseline="standard",
    compare=("extraction_rate", "final_loss"),
    metrics=(*WORKLOAD_METRICS, "extraction_rate", "token_match"),
    declares=(
        Metric("extraction_rate", "fraction", "lower", "seed", "training sequences whose second half is reproduced"),
        Metric("token_match", "fraction", "lower", "seed", "continuation tokens reproduced"),
    ),
    target="none: memorisation is measured on the final model",
)
