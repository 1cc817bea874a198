"""The one training loop every workload uses, with four plug points.

- **loss**: classify: ``loss(features (N, H), head_weight (C, H), head_bias (C,), targets)
  -> per-example loss (N,)``, with ``probabilities(features, weight, bias) -> (N, C)`` for
  evaluation (a loss such as the harmonic loss predicts from distances, not logits);
  regress: ``loss(outputs, targets) -> (N,)``; lm: ``loss(hidden (N, D), head_weight (V, D),
  targets (N,), ignore_index) -> mean loss`` (the signature of the loss family's linear
  cross-entropy, so fused heads drop in);
- **optimizer** ``(params, lr) -> torch.optim.Optimizer`` and **schedule**
  ``(step, total_steps) -> lr multiplier``; an optimizer with ``needs_closure`` (SAM) gets
  ``step(closure)``, the closure recomputing the loss and gradients on the same batch; one
  with ``eval()``/``train()`` (schedule-free) is switched to its evaluation weights around
  every evaluation;
- **select** ``(pool, k, generator) -> (indices into the pool, weights or None)``: data
  selection from a candidate pool, with per-example losses and output-gradient norms
  available on demand; the training loss is ``mean(weights * per-example loss)`` over the
  chosen examples (None = all weights 1), so importance weights keep it unbiased. Weights
  may instead be a function of the training forward's own detached losses (``LossWeights``:
  in-batch reweighting, token selection inside the loss), which costs no scoring pass;
- **attention** and token routing are model plug points (see ``models.TransformerLM``).

Each step draws a candidate pool in a seeded data order, lets the selection pick a
batch, and takes one optimizer step. Scoring and selection happen inside the timed
step, so their cost counts in wall time; evaluation does not. The step clock waits for the
device at its boundaries (``StepClock``): on an asynchronous device (CUDA) a step's time is
its kernels' time, not their launch time. The initialisation seed (the model's) and the
data-order seed (here) are separate.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from effbench.data import IGNORE, Dataset
from effbench.tasks import CurveRecord, WorkloadOutcome


def per_example_loss(model: torch.nn.Module, data_kind: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference per-example loss: CE (classify), mean squared error (regress), mean token CE (lm)."""
    out = model(x)
    if data_kind == "classify":
        return F.cross_entropy(out, y, reduction="none")
    if data_kind == "regress":
        return (out - y).pow(2).mean(-1)
    token = F.cross_entropy(out.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="none").view(y.shape)
    counted = (y != IGNORE).sum(-1).clamp_min(1)
    return token.sum(-1) / counted


def fit_copy(model: torch.nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
             steps: int, batch: int, lr: float, generator: torch.Generator) -> torch.nn.Module:
    """A deep copy of ``model`` trained ``steps`` SGD steps (momentum 0.9) on batches drawn with
    replacement from ``rows`` of (x, y): the auxiliary models selection methods train for
    themselves (an irreducible-loss model, early-training scorers); ``model`` is untouched."""
    trained = copy.deepcopy(model)
    optimizer = torch.optim.SGD(trained.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        chosen = rows[torch.randint(len(rows), (batch,), generator=generator).to(rows.device)]
        loss = per_example_loss(trained, kind, x[chosen], y[chosen]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return trained


@dataclass
class CandidatePool:
    """Candidates offered to a selection method; per-example statistics are computed when first asked for.

    ``indices`` are the candidates' rows in ``data``'s training split; ``memory`` is one dict per
    training run that a method may keep state in across steps (a loss history, a model trained
    once on hold-out data); ``step`` counts from 1 to ``steps``. Every forward pass a method
    asks for counts in ``scored`` and, being inside the timed step, in wall time.
    """

    x: torch.Tensor
    y: torch.Tensor
    model: torch.nn.Module
    kind: str = "classify"
    indices: torch.Tensor | None = None
    data: Dataset | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    steps: int = 0
    _losses: torch.Tensor | None = field(default=None, repr=False)
    _bound: torch.Tensor | None = field(default=None, repr=False)
    scored: int = 0

    @property
    def size(self) -> int:
        return self.x.shape[0]

    def losses(self) -> torch.Tensor:
        """Per-example loss of every candidate under the current model (no gradient)."""
        if self._losses is None:
            self._score()
        return self._losses

    def grad_norm_bound(self) -> torch.Tensor:
        """Per-example norm of the loss gradient w.r.t. the model's outputs (Katharopoulos & Fleuret's
        upper bound, up to a constant, of the full per-example gradient norm): ``||softmax(z) - onehot(y)||``
        for cross-entropy, ``||2 (out - y) / D||`` for mean squared error. The forward pass is shared
        with ``losses()``; no per-example gradient is materialised."""
        if self.kind not in ("classify", "regress"):
            raise ValueError(f"no output-gradient bound for {self.kind!r} data")
        if self._bound is None:
            self._score()
        return self._bound

    def _score(self) -> None:
        with torch.no_grad():
            if self.kind == "classify":
                out = self.model(self.x)
                self._losses = F.cross_entropy(out, self.y, reduction="none")
                residual = torch.softmax(out.float(), -1)
                residual[torch.arange(self.size, device=out.device), self.y] -= 1
                self._bound = torch.linalg.vector_norm(residual, dim=-1)
            elif self.kind == "regress":
                out = self.model(self.x)
                self._losses = (out - self.y).pow(2).mean(-1)
                self._bound = torch.linalg.vector_norm(2 * (out - self.y) / out.shape[-1], dim=-1)
            else:
                self._losses = per_example_loss(self.model, self.kind, self.x, self.y)
        self.scored += self.size


# Weights a selection may derive from the training forward's own losses instead of a scoring pass:
# (detached loss, valid) -> weights, where the loss is per example (N,) with valid None, or, on
# token data, per token (B, T) with ``valid`` marking counted tokens; the weights returned are
# per example or (token data) per sequence (B,) or per token (B, T).
LossWeights = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
SelectFn = Callable[[CandidatePool, int, torch.Generator], tuple[torch.Tensor, torch.Tensor | LossWeights | None]]
OptimizerFn = Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer]
ScheduleFn = Callable[[int, int], float]


def sgd_momentum(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=0.9)


def adamw(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=0.01)


def constant(step: int, total: int) -> float:
    return 1.0


def take_step(optimizer: Any, closure: Callable[[], torch.Tensor]) -> None:
    """``step(closure)`` for rules that take a second gradient (SAM), ``step()`` for the rest."""
    if getattr(optimizer, "needs_closure", False):
        optimizer.step(closure)
    else:
        optimizer.step()


@contextmanager
def evaluation_weights(optimizer: Any) -> Iterator[None]:
    """Hold the weights a schedule-free optimizer evaluates (its average) inside the block."""
    switch = callable(getattr(optimizer, "eval", None)) and callable(getattr(optimizer, "train", None))
    if switch:
        optimizer.eval()
    try:
        yield
    finally:
        if switch:
            optimizer.train()


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


@dataclass
class Plugs:
    loss: Callable[..., torch.Tensor] | None = None  # None: the reference per-example loss
    probabilities: Callable[..., torch.Tensor] | None = None  # classify: None = softmax of the logits
    optimizer: OptimizerFn = sgd_momentum
    schedule: ScheduleFn = constant
    select: SelectFn | None = None  # None: train on the first `batch` examples of the pool
    targets: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # lm: (x, y) -> y to train on
    grad_norms: list[float] | None = None  # a list here receives the latest run's gradient norms (untimed)


@dataclass(frozen=True)
class Budget:
    steps: int
    batch: int
    eval_every: int
    pool: int | None = None  # candidates per step; None = batch (no selection)


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


def minimize(
    objective: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor],
    x0: torch.Tensor,
    plugs: Plugs,
    steps: int,
    eval_every: int,
    lr: float,
    target: float | None,
    seed: int,
    optimum: float = 0.0,
) -> WorkloadOutcome:
    """Minimise a test function with the optimizer and schedule plugs (no data, no model).

    ``objective(x, generator)`` is the training loss (stochastic when given a generator);
    ``objective(x, None)`` the exact value. The metric is -log10(f(x) - f*): orders of
    magnitude of suboptimality removed, higher is better.
    """
    if plugs.grad_norms is not None:
        plugs.grad_norms.clear()
    noise = torch.Generator().manual_seed(30_000 + seed)
    x = torch.nn.Parameter(x0.clone())
    optimizer = plugs.optimizer([x], lr)
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    curve: list[CurveRecord] = []
    clock = StepClock(x.device)
    last = math.nan

    def record(step: int) -> None:
        with torch.no_grad(), evaluation_weights(optimizer):
            gap = objective(x, None).item() - optimum
        metric = -math.log10(max(gap, 1e-30)) if math.isfinite(gap) else -math.inf
        curve.append(CurveRecord(step, clock.elapsed, None if math.isnan(last) else last, gap, metric))

    record(0)
    for step in range(1, steps + 1):
        clock.start()
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * plugs.schedule(step - 1, steps)
        sample = noise.get_state()  # a closure re-evaluates the same stochastic sample
        loss = objective(x, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if plugs.grad_norms is not None:
            with clock.excluded():  # the backward's kernels finish first and stay in the step
                observe_gradients([x], plugs.grad_norms)

        def closure(sample: torch.Tensor = sample) -> torch.Tensor:
            after = noise.get_state()
            noise.set_state(sample)
            optimizer.zero_grad(set_to_none=True)
            again = objective(x, noise)
            again.backward()
            noise.set_state(after)
            return again

        take_step(optimizer, closure)
        clock.stop()
        last = loss.item()
        if step % eval_every == 0 or step == steps:
            record(step)
    return outcome_from_curve(curve, target, steps, train_time=clock.elapsed)
