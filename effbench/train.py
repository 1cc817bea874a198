"""The one training loop every workload uses (plug points: ``effbench.plugs``), and the equal-budget lr tuning.

Each step draws a candidate pool in a seeded data order, lets the selection pick a
batch, and takes one optimizer step. Scoring and selection happen inside the timed
step, so their cost counts in wall time; evaluation does not. The step clock waits for the
device at its boundaries (``StepClock``): on an asynchronous device (CUDA) a step's time is
its kernels' time, not their launch time. The initialisation seed (the model's) and the
data-order seed (here) are separate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from effbench.data import IGNORE, Dataset
from effbench.evaluation import evaluate, outcome_from_curve
from effbench.plugs import (
    Budget,
    CandidatePool,
    LossWeights,
    Plugs,
    evaluation_weights,
    per_example_loss,
    take_step,
)
from effbench.tasks import CurveRecord, WorkloadOutcome


def _no_sync(device: torch.device) -> None:
    """The CPU runs a step's work before returning: there is no queue to wait for."""


# How to wait for a device type's queued work. A test substitutes a fake asynchronous device here.
SYNCHRONIZE: dict[str, Callable[[torch.device], None]] = {
    "cpu": _no_sync,
    "cuda": lambda device: torch.cuda.synchronize(device),
}


def synchronizer(device: torch.device | str) -> Callable[[torch.device], None]:
    """The function that waits until ``device`` has finished its queued work: ``SYNCHRONIZE``'s entry
    for the device type, else the backend's own ``torch.<type>.synchronize()`` (mps, xpu), else none."""
    kind = torch.device(device).type
    if kind in SYNCHRONIZE:
        return SYNCHRONIZE[kind]
    backend_sync = getattr(getattr(torch, kind, None), "synchronize", None)
    if callable(backend_sync):
        return lambda device: backend_sync()
    return _no_sync


class StepClock:
    """Seconds spent in training steps on ``device``, summed over the steps.

    On an asynchronous device the host only queues kernels, so the clock waits for the device
    at every boundary: ``start()`` after the work queued before the step (evaluation, the last
    loss) has finished, ``stop()`` once the step's own kernels have finished. ``excluded()``
    keeps bookkeeping out of the step without taking the step's queued work out with it.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.synchronize = synchronizer(self.device)
        self.elapsed = 0.0
        self._began: float | None = None

    def start(self) -> None:
        self.synchronize(self.device)
        self._began = time.perf_counter()

    def stop(self) -> None:
        if self._began is None:
            raise RuntimeError("StepClock.stop() without start()")
        self.synchronize(self.device)
        self.elapsed += time.perf_counter() - self._began
        self._began = None

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Untimed block inside a step: the clock stops once the work queued so far (e.g. the backward)
        has finished, so that work stays in the step, and restarts once the block's own work has."""
        self.stop()
        try:
            yield
        finally:
            self.start()


def model_device(model: torch.nn.Module, data: Dataset) -> torch.device:
    """The device a model computes on: its first parameter's, else its data's."""
    param = next(model.parameters(), None)
    return param.device if param is not None else data.x_train.device


def observe_gradients(params: Iterable[torch.Tensor], norms: list[float]) -> float:
    """Append this step's global gradient norm (refined schedules are built from a run's norms) and
    return it. Bookkeeping, not training: the loops call it inside ``StepClock.excluded()``."""
    squares = [p.grad.detach().float().square().sum() for p in params if p.grad is not None]
    norms.append(float(torch.stack(squares).sum().sqrt()) if squares else 0.0)
    return norms[-1]


def _weighted_lm_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                      weights: torch.Tensor | LossWeights) -> torch.Tensor:
    """Token data with selection weights: per sequence (B,) weights multiply each sequence's mean token
    loss; per token (B, T) weights multiply each token's loss, averaged over the batch's counted tokens."""
    out = model(x)
    valid = y != IGNORE
    token = F.cross_entropy(out.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="none").view(y.shape)
    if callable(weights):
        weights = weights(token.detach(), valid)
    weights = weights.to(token.device, token.dtype)
    if weights.dim() == 2:
        return (token * weights * valid).sum() / valid.sum().clamp_min(1)
    per_sequence = token.sum(-1) / valid.sum(-1).clamp_min(1)
    return (per_sequence * weights).mean()


def _train_loss(model: torch.nn.Module, data: Dataset, plugs: Plugs, x: torch.Tensor, y: torch.Tensor,
                weights: torch.Tensor | LossWeights | None) -> torch.Tensor:
    if data.kind == "lm" and plugs.loss is not None and weights is None:
        hidden = model.hidden(x)  # (B, T, D): the head + loss plug never needs (B, T, V) logits
        return plugs.loss(hidden.flatten(0, 1), model.head_weight, y.flatten(), ignore_index=IGNORE)
    if data.kind == "lm" and weights is not None:
        return _weighted_lm_loss(model, x, y, weights)
    if data.kind == "classify" and plugs.loss is not None:
        head = model.head
        per_example = plugs.loss(model.features(x), head.weight, head.bias, y)
    elif data.kind == "regress" and plugs.loss is not None:
        per_example = plugs.loss(model(x), y)
    else:
        per_example = per_example_loss(model, data.kind, x, y)
    if weights is None:
        return per_example.mean()
    if callable(weights):
        weights = weights(per_example.detach(), None)
    weights = weights.to(per_example.device, per_example.dtype)  # selection may work on the CPU
    return (per_example * weights).mean()  # weights multiply the loss (importance weights stay unbiased)


def train(
    model: torch.nn.Module,
    data: Dataset,
    plugs: Plugs,
    budget: Budget,
    lr: float,
    target: float | None,
    seed: int,
    final: Callable[[torch.nn.Module, Dataset], dict[str, float]] | None = None,
) -> WorkloadOutcome:
    """Train for ``budget.steps`` steps; curves every ``eval_every`` steps; metrics from the curve.

    ``final(model, data)`` adds metrics measured on the trained model (not timed).
    """
    if plugs.grad_norms is not None:
        plugs.grad_norms.clear()
    order_gen = torch.Generator().manual_seed(10_000 + seed)  # data order, apart from the init seed
    select_gen = torch.Generator().manual_seed(20_000 + seed)
    select_memory: dict[str, Any] = {}  # a selection method's state across the steps of this run
    optimizer = plugs.optimizer(list(model.parameters()), lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    n = data.x_train.shape[0]
    pool_size = min(budget.pool or budget.batch, n)
    order, cursor = torch.randperm(n, generator=order_gen), 0
    curve: list[CurveRecord] = []
    clock = StepClock(model_device(model, data))
    train_loss, seen, scored = math.nan, 0, 0

    calibration: dict[str, float] = {}

    def record(step: int) -> None:
        with evaluation_weights(optimizer):
            eval_loss, eval_metric = evaluate(model, data, plugs=plugs, calibration=calibration)
        curve.append(CurveRecord(step, clock.elapsed, None if math.isnan(train_loss) else train_loss, eval_loss,
                                 eval_metric))

    record(0)
    for step in range(1, budget.steps + 1):
        clock.start()
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * plugs.schedule(step - 1, budget.steps)
        if cursor + pool_size > n:
            order, cursor = torch.randperm(n, generator=order_gen), 0
        candidates = order[cursor : cursor + pool_size]
        cursor += pool_size
        x, y = data.x_train[candidates], data.y_train[candidates]
        weights = None
        if plugs.select is not None:
            pool = CandidatePool(x, y, model, data.kind, indices=candidates, data=data, memory=select_memory,
                                 step=step, steps=budget.steps)
            chosen, weights = plugs.select(pool, budget.batch, select_gen)
            x, y, scored = x[chosen], y[chosen], scored + pool.scored
        if plugs.targets is not None:
            y = plugs.targets(x, y)  # token-level selection (e.g. the goldfish drop), inside the timed step
        loss = _train_loss(model, data, plugs, x, y, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if plugs.grad_norms is not None:
            with clock.excluded():  # the backward's kernels finish first and stay in the step
                observe_gradients(model.parameters(), plugs.grad_norms)

        def closure(x: torch.Tensor = x, y: torch.Tensor = y, weights: torch.Tensor | None = weights) -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            again = _train_loss(model, data, plugs, x, y, weights)
            again.backward()
            return again

        take_step(optimizer, closure)
        clock.stop()
        train_loss, seen = loss.item(), seen + x.shape[0]
        if step % budget.eval_every == 0 or step == budget.steps:
            record(step)
    outcome = outcome_from_curve(curve, target, budget.steps, seen=seen, scored=scored, train_time=clock.elapsed)
    if final is not None:
        with torch.no_grad(), evaluation_weights(optimizer):
            outcome.metrics.update(final(model, data))
    if "ece" in calibration:
        outcome.metrics["ece"] = calibration["ece"]  # of the final model
    return outcome


def tune_lr(run: Callable[[float, int], WorkloadOutcome], lrs: list[float], seed: int = 0) -> tuple[float, Any]:
    """Equal tuning budget: every lr of the fixed grid on one seed; the best one wins.

    Best = fewest steps to the target; if no lr reaches it, the best final metric.
    Returns ``(best_lr, [(lr, outcome), ...])``.
    """
    trials = [(lr, run(lr, seed)) for lr in lrs]

    def score(trial: tuple[float, WorkloadOutcome]) -> tuple[float, float]:
        metrics = trial[1].metrics
        steps = metrics["steps_to_target"]
        final = metrics["final_metric"]
        final = final if final is not None and math.isfinite(final) else -math.inf
        return (steps if steps is not None else math.inf, -final)

    best = min(trials, key=score)
    return best[0], trials
