"""Fixed workloads by name: a dataset and a model from the zoo, a budget, a target, and the
tuning protocol, shared by every workload task.

A workload grid point names its pieces, e.g.::

    {"data": "digits", "model": "mlp", "hidden": 64, "steps": 60, "batch": 32, "pool": 128,
     "eval_every": 10, "lrs": "0.01,0.03,0.1", "target": 0.85}

``lrs`` is the fixed log-grid every method is tuned over (equal tuning budget) on the tuning
seed, which is never a scored seed; the best lr then trains every scored seed. A point may
give a single ``lr`` instead.

Tuning is a job of its own (``tune``): the runner runs it once per (task, method, impl,
point, dtype, device) in the worker, before and apart from the scored seeds, stores every
trial (the ``tuning`` table), and hands the chosen values to each scored case (``preset``).
Called outside the runner (a test, a notebook), a workload tunes inline, once per process.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from effbench.data import DATASETS, Dataset
from effbench.models import (
    LM_SIZES,
    MLP,
    ConvNet,
    LogisticRegression,
    TransformerLM,
    causal_attention,
    count_parameters,
)
from effbench.plugs import Budget, Plugs
from effbench.tasks import WorkloadOutcome
from effbench.train import train, tune_lr

MODELS = ("logreg", "mlp", "convnet", *(f"lm_{size}" for size in LM_SIZES))
# The seed tuning runs on: above every scored seed (the runner allows at most 1000), so no scored seed's
# numbers ever come from the run its setting was chosen on.
TUNING_SEED = 10_000


@dataclass
class TrialRecord:
    """One tried setting (the runner turns it into a ``rows.TuningTrial``)."""

    seed: int
    param: str
    value: float
    score: float | None  # steps to the target; None when missed
    final_metric: float | None
    chosen: bool
    note: str = ""


@dataclass
class TuningJob:
    """What a tuning job found: the values scored cases are given (JSON), and every trial."""

    values: dict[str, Any] = field(default_factory=dict)
    trials: list[TrialRecord] = field(default_factory=list)


class TuningComplete(Exception):  # noqa: N818 - a signal that tuning reached the scored training, not an error
    """Raised in a tuning job once the last tuned value is known: what follows is scored training."""


# Tuned values of this process, keyed by ``_key``: chosen by a tuning job (``preset``) or inline.
_values: dict[str, Any] = {}
_job: TuningJob | None = None  # the tuning job running in this process, if any
_strict = False  # a scored case of the runner: every tuned value must come from its tuning job
_depth = 0  # nesting of tuned() computations (a refined schedule tunes the lr of its prior run)


def _key(memo_key: tuple[str, ...], point: dict[str, Any]) -> str:
    return "\x1f".join((*memo_key, repr(sorted(point.items()))))


@contextmanager
def tuning_job() -> Iterator[TuningJob]:
    """Run a workload case's tuning: ``task.run`` inside it tunes, records every trial and stops
    (``TuningComplete``) where the scored training would start."""
    global _job
    _values.clear()
    _job = TuningJob()
    try:
        yield _job
    finally:
        _job = None


@contextmanager
def preset(values: dict[str, Any] | None) -> Iterator[None]:
    """A scored case given its tuning job's values: a value it asks for and was not given is an error,
    never a silent tuning run inside a scored case. ``None``: tune inline (outside the runner)."""
    global _strict
    if values is not None:
        _values.clear()
        _values.update(values)
        _strict = True
    try:
        yield
    finally:
        _strict = False
        if values is not None:
            _values.clear()


def tuned(memo_key: tuple[str, ...], point: dict[str, Any],
          compute: Callable[[], tuple[Any, list[TrialRecord]]]) -> Any:
    """The tuned value named by ``memo_key`` and the point: preset by the tuning job, or computed (in a
    tuning job, or inline outside the runner) by ``compute() -> (JSON-able value, trials)``."""
    global _depth
    key = _key(memo_key, point)
    if key in _values:
        return _values[key]
    if _strict:
        raise RuntimeError(f"no tuned value for {' '.join(memo_key)} from this case's tuning job")
    _depth += 1
    try:
        value, trials = compute()
    finally:
        _depth -= 1
    value = json.loads(json.dumps(value))  # what a scored case will get back: tuples become lists
    _values[key] = value
    if _job is not None:
        _job.values[key] = value
        _job.trials.extend(trials)
    return value


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; valid: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]()


def build_model(name: str, data: Dataset, seed: int, *, hidden: int = 64,
                attention: Callable[..., torch.Tensor] = causal_attention, router: Any = None) -> torch.nn.Module:
    """A zoo model sized for ``data``, initialised from ``seed`` alone."""
    if name.startswith("lm_"):
        if data.kind != "lm":
            raise ValueError(f"model {name} needs token data, {data.name} is {data.kind}")
        return TransformerLM(LM_SIZES[name[3:]], data.n_classes, seed, attention=attention, router=router)
    if data.kind == "lm":
        raise ValueError(f"model {name} cannot take token data ({data.name})")
    if name == "logreg":
        return LogisticRegression(data.n_features, data.n_classes, seed)
    if name == "mlp":
        return MLP(data.n_features, hidden, data.n_classes, seed)
    if name == "convnet":
        return ConvNet(data.n_classes, seed)
    raise KeyError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")


def learning_rates(point: dict[str, Any]) -> list[float]:
    if "lrs" in point:
        return [float(v) for v in str(point["lrs"]).split(",")]
    return [float(point["lr"])]


def needs_tuning(point: dict[str, Any]) -> bool:
    """Whether a workload point tunes anything (its lr grid): the runner then runs a tuning job first."""
    return len(learning_rates(point)) > 1


def tuned_lr(memo_key: tuple[str, ...], point: dict[str, Any],
             run: Callable[[float, int], WorkloadOutcome]) -> tuple[float, str]:
    """The point's lr, or the best of its ``lrs`` grid on the tuning seed. In a tuning job the lr is the
    last tuned value (scored training follows it), so the job stops here (``TuningComplete``)."""
    lrs = learning_rates(point)
    if len(lrs) == 1:
        return lrs[0], "fixed by the grid point"

    def compute() -> tuple[Any, list[TrialRecord]]:
        lr, trials = tune_lr(run, lrs, TUNING_SEED)
        scores = "; ".join(
            f"{t_lr:g}: steps {t.metrics['steps_to_target'] or 'miss'}, final {t.metrics['final_metric']:.4f}"
            for t_lr, t in trials
        )
        # nested inside another tuned value's computation (a refined schedule's prior run): its own param name,
        # so that the stored trials of the two sweeps stay apart
        param = "lr" if _depth == 1 else "prior_lr"
        records = [TrialRecord(TUNING_SEED, param, t_lr, t.metrics["steps_to_target"], t.metrics["final_metric"],
                               t_lr == lr) for t_lr, t in trials]
        return (lr, f"best of {len(lrs)} lrs on tuning seed {TUNING_SEED} by steps to target ({scores})"), records

    lr, how = tuned(("lr", *memo_key), point, compute)
    if _job is not None and _depth == 0:
        raise TuningComplete
    return float(lr), how


def run_workload(
    point: dict[str, Any],
    seed: int,
    plugs: Plugs | Callable[[torch.nn.Module, int], Plugs],
    memo_key: tuple[str, ...],
    device: str = "cpu",
    attention: Callable[..., torch.Tensor] = causal_attention,
    router: Any = None,
    final: Callable[[torch.nn.Module, Dataset], dict[str, float]] | None = None,
) -> WorkloadOutcome:
    """Tune on the tuning seed (in the runner's tuning job, or once per process outside the runner), then
    train ``seed`` with the best learning rate.

    ``plugs`` may be a function ``(model, seed) -> Plugs`` for methods that act on the model they
    train (freezing layers, swapping them for approximate ones); it is called once per run.
    """
    data = dataset(point["data"]).to(device)
    budget = Budget(point["steps"], point["batch"], point["eval_every"], point.get("pool"))

    def one(lr: float, run_seed: int) -> WorkloadOutcome:
        model = build_model(point["model"], data, run_seed, hidden=point.get("hidden", 64), attention=attention,
                            router=router).to(device)  # initialised on the CPU: the same weights on any device
        run_plugs = plugs(model, run_seed) if callable(plugs) else plugs
        return train(model, data, run_plugs, budget, lr, point.get("target"), run_seed, final=final)

    lr, how = tuned_lr((*memo_key, device), point, one)
    outcome = one(lr, seed)
    outcome.metrics["lr"] = lr
    outcome.notes["lr"] = how
    n_params = count_parameters(build_model(point["model"], data, seed, hidden=point.get("hidden", 64)))
    outcome.notes["final_metric"] = (
        f"{data.metric} on {data.name} (sha256:{data.content_hash}), {point['model']} with {n_params} parameters"
    )
    return outcome
