"""Evaluation on the held-out split, and a workload's metrics from its curve (final values, steps and time
to the target)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from effbench.data import IGNORE, Dataset
from effbench.plugs import Plugs
from effbench.tasks import CurveRecord, WorkloadOutcome


def crossing(xs: list[float], ys: list[float], target: float) -> float | None:
    """First x where ys reaches ``target`` (rising), linearly interpolated; None if never."""
    for i, y in enumerate(ys):
        if y is not None and y >= target:
            if i == 0 or ys[i - 1] is None:
                return xs[i]
            x0, x1, y0 = xs[i - 1], xs[i], ys[i - 1]
            return x0 + (target - y0) / (y - y0) * (x1 - x0)
    return None


def class_probabilities(model: torch.nn.Module, x: torch.Tensor, plugs: Plugs | None = None) -> torch.Tensor:
    """(N, C) predicted class probabilities: the loss's own rule when it has one, else softmax."""
    if plugs is not None and plugs.probabilities is not None:
        head = model.head
        return plugs.probabilities(model.features(x), head.weight, head.bias)
    return torch.softmax(model(x), dim=-1)


def expected_calibration_error(probs: torch.Tensor, targets: torch.Tensor, bins: int = 15) -> float:
    """ECE with equal-width confidence bins: sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|."""
    confidence, prediction = probs.max(-1)
    correct = (prediction == targets).float()
    edges = torch.linspace(0, 1, bins + 1, device=probs.device)
    ece = torch.zeros((), device=probs.device)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.float().mean() * (correct[inside].mean() - confidence[inside].mean()).abs()
    return float(ece)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: Dataset, batch: int = 512, plugs: Plugs | None = None,
             calibration: dict[str, float] | None = None) -> tuple[float, float]:
    """(eval loss, eval metric) on the held-out split; every metric here is higher-is-better.

    Classification loss is the NLL of the predicted probabilities, so losses of different
    methods compare; ``calibration``, if given, receives the ECE.
    """
    model.eval()
    losses, hits, counts = [], [], []
    preds, targets, all_probs = [], [], []
    for start in range(0, data.x_eval.shape[0], batch):
        x, y = data.x_eval[start : start + batch], data.y_eval[start : start + batch]
        if data.kind == "classify":
            probs = class_probabilities(model, x, plugs)
            losses.append(-probs.gather(1, y[:, None]).clamp_min(1e-12).log().sum())
            preds.append(probs.argmax(-1))
            targets.append(y)
            all_probs.append(probs)
            counts.append(y.numel())
            continue
        out = model(x)
        if data.kind == "regress":
            losses.append((out - y).pow(2).mean(-1).sum())
            preds.append(out)
            targets.append(y)
            counts.append(y.shape[0])
        else:
            mask = y != IGNORE
            losses.append(F.cross_entropy(out.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum"))
            hits.append(((out.argmax(-1) == y) & mask).sum())
            counts.append(int(mask.sum()))
    model.train()
    n = sum(counts)
    eval_loss = float(sum(losses)) / n
    if data.kind == "lm":
        return eval_loss, float(sum(hits)) / n
    pred, target = torch.cat(preds), torch.cat(targets)
    if calibration is not None and all_probs:
        calibration["ece"] = expected_calibration_error(torch.cat(all_probs), target)
    if data.kind == "regress":
        ss_res = (pred - target).pow(2).sum()
        ss_tot = (target - target.mean(0)).pow(2).sum()
        return eval_loss, float(1 - ss_res / ss_tot)
    if data.metric == "balanced_accuracy":
        recalls = [(pred[target == c] == c).float().mean() for c in target.unique()]
        return eval_loss, float(torch.stack(recalls).mean())
    return eval_loss, float((pred == target).float().mean())


def outcome_from_curve(curve: list[CurveRecord], target: float | None, steps: int, *, seen: int = 0,
                       scored: int = 0, train_time: float = 0.0) -> WorkloadOutcome:
    """Workload metrics from a curve: final values, and steps and time to the target (interpolated)."""
    metric = [c.eval_metric for c in curve]
    notes = {}
    if target is None:
        steps_to = time_to = None
        notes["steps_to_target"] = notes["time_to_target_s"] = "this workload has no target"
    else:
        steps_to = crossing([float(c.step) for c in curve], metric, target)
        time_to = crossing([c.wall_s for c in curve], metric, target)
        if steps_to is None:
            notes["steps_to_target"] = notes["time_to_target_s"] = f"target {target} not reached in {steps} steps"
    final_loss = curve[-1].eval_loss
    finite = final_loss is not None and math.isfinite(final_loss)
    return WorkloadOutcome(
        metrics={
            "final_loss": final_loss if finite else math.nan,
            "final_metric": curve[-1].eval_metric,
            "steps_to_target": steps_to,
            "time_to_target_s": time_to,
            "time_per_step_ms": 1e3 * train_time / max(steps, 1),
            "examples_seen": float(seen),
            "examples_scored": float(scored),
        },
        curve=curve,
        notes=notes,
    )
