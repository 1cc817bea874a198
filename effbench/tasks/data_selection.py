"""sampler/data_selection: which examples to train on, measured in steps and wall-clock to a target.

A fixed MLP on scikit-learn's digits (fixed split), SGD with momentum, a fixed budget
of steps. Each step the selection method picks ``batch`` examples from a candidate
pool of ``pool`` examples. Seeds set the initialisation and the data order.

Target (fixed, never moved to suit a method): eval accuracy ``target`` in the grid
point. cpu/gpu: the uniform baseline's median eval accuracy at 40% of the budget over
seeds 0-4 (0.940 at step 160 of 400, measured 2026-11-23), rounded down to 0.93. smoke:
a plumbing check only; 0.85 is close to uniform's final accuracy there, so both
outcomes (reached, missed) get exercised.
"""

from __future__ import annotations

from typing import Any

import torch

from effbench.data import digits
from effbench.registry import Impl, Method
from effbench.tasks import WorkloadOutcome, WorkloadTask
from effbench.train import train_classifier


def mlp(n_in: int, hidden: int, n_out: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out))


def run(
    method: Method, impl: Impl, point: dict[str, Any], seed: int, device: str, dtype: torch.dtype
) -> WorkloadOutcome:
    data = digits()
    model = mlp(data.x_train.shape[1], point["hidden"], data.n_classes, seed)
    return train_classifier(
        model, data, impl.fn,
        steps=point["steps"], batch_size=point["batch"], pool_size=point["pool"], lr=point["lr"],
        eval_every=point["eval_every"], target=point["target"], seed=seed,
    )


task = WorkloadTask(
    family="sampler",
    name="data_selection",
    description="Online batch selection on digits: a batch chosen from a candidate pool each step.",
    grids={
        "smoke": [{"data": "digits", "hidden": 64, "steps": 60, "batch": 32, "pool": 128, "lr": 0.05,
                   "eval_every": 10, "target": 0.85}],
        "cpu": [{"data": "digits", "hidden": 128, "steps": 400, "batch": 32, "pool": 128, "lr": 0.05,
                 "eval_every": 10, "target": 0.93}],
        "gpu": [{"data": "digits", "hidden": 128, "steps": 400, "batch": 32, "pool": 128, "lr": 0.05,
                 "eval_every": 10, "target": 0.93}],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("float32",)},
    run=run,
    prepare=lambda point: digits(),
    target="eval accuracy >= point['target']; set from the uniform baseline (see module docstring)",
)
