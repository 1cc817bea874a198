"""The training loop workloads share, with a data-selection plug point.

Each step draws a candidate pool from the training set (in a seeded order), lets the
selection method pick a batch (and optional per-example weights) from it, and takes
one optimizer step on that batch. Scoring done by the selection method (e.g. the
pool's losses) happens inside the timed step, so its cost counts in wall time.
Evaluation is not timed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from effbench.data import Dataset
from effbench.tasks import CurveRecord, WorkloadOutcome


@dataclass
class CandidatePool:
    """Candidates offered to a selection method; statistics are computed when first asked for."""

    x: torch.Tensor
    y: torch.Tensor
    model: torch.nn.Module
    _losses: torch.Tensor | None = field(default=None, repr=False)
    scored: int = 0

    @property
    def size(self) -> int:
        return self.x.shape[0]

    def losses(self) -> torch.Tensor:
        """Per-example loss of every candidate under the current model (no gradient)."""
        if self._losses is None:
            with torch.no_grad():
                self._losses = F.cross_entropy(self.model(self.x), self.y, reduction="none")
            self.scored += self.size
        return self._losses


# select(pool, k, generator) -> (indices into the pool, per-example weights or None)
SelectFn = Callable[[CandidatePool, int, torch.Generator], tuple[torch.Tensor, torch.Tensor | None]]


def crossing(xs: list[float], ys: list[float], target: float) -> float | None:
    """First x where ys reaches ``target`` (rising), linearly interpolated; None if never."""
    for i, y in enumerate(ys):
        if y >= target:
            if i == 0:
                return xs[0]
            x0, x1, y0 = xs[i - 1], xs[i], ys[i - 1]
            return x0 + (target - y0) / (y - y0) * (x1 - x0)
    return None


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).float().mean().item()


def train_classifier(
    model: torch.nn.Module,
    data: Dataset,
    select: SelectFn,
    *,
    steps: int,
    batch_size: int,
    pool_size: int,
    lr: float,
    eval_every: int,
    target: float,
    seed: int,
) -> WorkloadOutcome:
    """Train ``model`` with SGD+momentum for ``steps`` selected batches; eval accuracy is the metric."""
    order_gen = torch.Generator().manual_seed(10_000 + seed)  # data order, apart from the init seed
    select_gen = torch.Generator().manual_seed(20_000 + seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    n = data.x_train.shape[0]
    order, cursor = torch.randperm(n, generator=order_gen), 0
    curve: list[CurveRecord] = []
    train_time, train_loss, seen, scored = 0.0, math.nan, 0, 0

    def record(step: int) -> None:
        eval_loss, eval_acc = evaluate(model, data.x_eval, data.y_eval)
        curve.append(CurveRecord(step, train_time, None if math.isnan(train_loss) else train_loss,
                                 eval_loss, eval_acc))

    record(0)
    for step in range(1, steps + 1):
        start = time.perf_counter()
        if cursor + pool_size > n:
            order, cursor = torch.randperm(n, generator=order_gen), 0
        candidates = order[cursor:cursor + pool_size]
        cursor += pool_size
        pool = CandidatePool(data.x_train[candidates], data.y_train[candidates], model)
        chosen, weights = select(pool, batch_size, select_gen)
        per_example = F.cross_entropy(model(pool.x[chosen]), pool.y[chosen], reduction="none")
        loss = per_example.mean() if weights is None else (per_example * weights).sum() / weights.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        train_time += time.perf_counter() - start
        train_loss, seen, scored = loss.item(), seen + len(chosen), scored + pool.scored
        if step % eval_every == 0 or step == steps:
            record(step)

    steps_axis = [float(c.step) for c in curve]
    times = [c.wall_s for c in curve]
    accs = [c.eval_metric for c in curve]
    steps_to = crossing(steps_axis, accs, target)
    time_to = crossing(times, accs, target)
    notes = {}
    if steps_to is None:
        notes["steps_to_target"] = notes["time_to_target_s"] = f"target {target} not reached in {steps} steps"
    return WorkloadOutcome(
        metrics={
            "final_loss": curve[-1].eval_loss,
            "final_metric": curve[-1].eval_metric,
            "steps_to_target": steps_to,
            "time_to_target_s": time_to,
            "time_per_step_ms": 1e3 * train_time / steps,
            "examples_seen": float(seen),
            "examples_scored": float(scored),
        },
        curve=curve,
        notes=notes,
    )
