"""sampler/memory: layer and gradient sampling against full training, on memory, step time and loss.

A method here is ``setup(model, lr, seed) -> optimizer``: it prepares the model it trains (freezes
blocks, swaps layers for approximate ones) and returns the optimizer; the shared loop
(``effbench.train``) then trains a byte-level transformer for a fixed step budget. Metrics:

- from the run: ``final_loss`` (eval NLL after the budget), ``final_metric`` (token accuracy),
  ``time_per_step_ms``, and ``peak_mem_bytes`` (the runner's peak RSS over the whole case on the
  CPU, which also holds the data, evaluation, the probe below and allocator slack; ``torch.cuda``
  peak on a GPU);
- from one probe step of a fresh model (seed-matched, not timed), counted exactly per tensor:
  ``saved_activation_bytes`` (storages autograd saves for backward, parameters excluded, each
  storage once), ``grad_bytes`` (weight gradients held), ``state_bytes`` (optimizer state after
  the step), ``train_state_bytes`` (their sum plus the weights: one step's memory model), and
  ``grad_rel_error``, ``||g - g_exact|| / ||g_exact||`` over the method's trainable parameters,
  against the exact gradient of an untouched copy (mean over 4 gradient draws on one batch).

The learning rate is fixed per point (AdamW 0.003, weight decay 0.01 for every method), not
tuned: the comparison is memory and step time at a fixed recipe, with the loss as the check that
the saving does not come for free. Training is from scratch on clean windows of the standard
library's source, not the paper settings' fine-tuning of a pretrained model.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from effbench.metrics import Metric
from effbench.plugs import Plugs, per_example_loss
from effbench.registry import Impl, Method
from effbench.tasks import WORKLOAD_METRICS, WorkloadOutcome, WorkloadTask
from effbench.workloads import build_model, dataset, run_workload

PROBE_DRAWS = 4


def _storage(t: torch.Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.nbytes()


def probe(impl: Impl, point: dict[str, Any], seed: int, device: str) -> dict[str, float]:
    """One step's memory, counted per tensor, and the gradient's error against exact backprop.

    Lean on purpose: the runner's peak RSS spans the whole case, so the probe holds at most one
    model with its gradients and the exact gradients at a time, below a training step's peak.
    """
    data = dataset(point["data"]).to(device)
    rows = torch.randperm(data.x_train.shape[0], generator=torch.Generator().manual_seed(seed))[: point["batch"]]
    x, y = data.x_train[rows.to(data.x_train.device)], data.y_train[rows.to(data.y_train.device)]

    model = build_model(point["model"], data, seed).to(device)
    optimizer = impl.fn(model, 1e-3, seed)
    params = {_storage(p)[0] for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr, nbytes = _storage(t)
        if ptr not in params:
            saved[ptr] = nbytes
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = per_example_loss(model, data.kind, x, y).mean()
    loss.backward()
    grad_bytes = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    optimizer.step()
    state_bytes = sum(v.nbytes for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v))
    weight_bytes = sum(p.nbytes for p in model.parameters())
    del model, optimizer, loss

    # the gradient error, on the initial weights: an untouched copy's exact gradient first
    fresh = build_model(point["model"], data, seed).to(device)
    impl.fn(fresh, 1e-3, seed)
    names = [n for n, p in fresh.named_parameters() if p.requires_grad]
    exact_model = build_model(point["model"], data, seed).to(device)
    exact_params = dict(exact_model.named_parameters())
    exact = torch.autograd.grad(per_example_loss(exact_model, data.kind, x, y).mean(),
                                [exact_params[n] for n in names])
    del exact_model, exact_params
    exact_sq = sum(float(g.double().square().sum()) for g in exact)
    trainable = dict(fresh.named_parameters())
    errors = []
    for _ in range(PROBE_DRAWS):
        grads = torch.autograd.grad(per_example_loss(fresh, data.kind, x, y).mean(), [trainable[n] for n in names])
        diff_sq = sum(float((g - e).double().square().sum()) for g, e in zip(grads, exact, strict=True))
        errors.append(math.sqrt(diff_sq / exact_sq))
        del grads
    activation_bytes = float(sum(saved.values()))
    return {
        "saved_activation_bytes": activation_bytes,
        "grad_bytes": float(grad_bytes),
        "state_bytes": float(state_bytes),
        "train_state_bytes": float(weight_bytes + grad_bytes + state_bytes) + activation_bytes,
        "grad_rel_error": sum(errors) / len(errors),
    }


def run(method: Method, impl: Impl, point: dict[str, Any], seed: int, device: str,
        dtype: torch.dtype) -> WorkloadOutcome:
    def plugs(model: torch.nn.Module, run_seed: int) -> Plugs:
        return Plugs(optimizer=lambda params, lr: impl.fn(model, lr, run_seed))

    outcome = run_workload(point, seed, plugs, ("memory", method.name, impl.name), device)
    outcome.metrics.update(probe(impl, point, seed, device))
    if not math.isfinite(outcome.metrics["final_loss"]):
        outcome.notes["final_loss"] = "the loss diverged"
    return outcome


task = WorkloadTask(
    family="sampler",
    name="memory",
    description="Layer sampling (LISA) and gradient row sampling (WTA-CRS) against full training: memory "
                "held per step, step time, and the loss after a fixed budget.",
    grids={
        "smoke": [{"data": "stdlib_windows", "model": "lm_tiny", "steps": 8, "batch": 4, "lr": 0.003,
                   "eval_every": 4}],
        "cpu": [{"data": "stdlib_windows", "model": "lm_tiny", "steps": 300, "batch": 16, "lr": 0.003,
                 "eval_every": 50},
                {"data": "stdlib_windows", "model": "lm_small", "steps": 60, "batch": 8, "lr": 0.003,
                 "eval_every": 60}],
        "gpu": [{"data": "stdlib_windows", "model": "lm_small", "steps": 2000, "batch": 32, "lr": 0.003,
                 "eval_every": 200},
                {"data": "stdlib_windows", "model": "lm_base", "steps": 1000, "batch": 32, "lr": 0.003,
                 "eval_every": 200}],
    },
    dtypes={"smoke": ("float32",), "cpu": ("float32",), "gpu": ("float32",)},
    # seconds per case on the 2-core development CPU; smoke: measured 2026-12-06 (a smoke run of each
    # method once); cpu: run 20261202T151502Z, about 10 min for 18 cases; gpu: not measured yet
    cost_s={"smoke": 2.1, "cpu": 33},
    run=run,
    prepare=lambda point: dataset(point["data"]),
    baseline="full_training",
    compare=("final_loss", "final_metric"),
    metrics=(*WORKLOAD_METRICS, "saved_activation_bytes", "grad_bytes", "state_bytes", "train_state_bytes",
             "grad_rel_error"),
    declares=(
        Metric("saved_activation_bytes", "bytes", "lower", "seed", "storages autograd saves for backward, each once"),
        Metric("grad_bytes", "bytes", "lower", "seed", "weight gradients held after backward"),
        Metric("state_bytes", "bytes", "lower", "seed", "optimizer state after the step"),
        Metric("train_state_bytes", "bytes", "lower", "seed", "weights + gradients + state + saved activations"),
        Metric("grad_rel_error", "relative", "lower", "seed", "||g - g_exact|| / ||g_exact|| over trained weights"),
    ),
    target="none: a fixed budget; the loss after it is the quality check",
)
