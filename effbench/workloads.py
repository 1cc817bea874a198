"""Fixed workloads by name: a dataset and a model from the zoo, a budget, a target, and the
tuning protocol, shared by every workload task.

A workload grid point names its pieces, e.g.::

    {"data": "digits", "model": "mlp", "hidden": 64, "steps": 60, "batch": 32, "pool": 128,
     "eval_every": 10, "lrs": "0.01,0.03,0.1", "target": 0.85}

``lrs`` is the fixed log-grid every method is tuned over on seed 0 (equal tuning budget);
the best lr then trains every seed. A point may give a single ``lr`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
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
from effbench.tasks import WorkloadOutcome
from effbench.train import Budget, Plugs, train, tune_lr

MODELS = ("logreg", "mlp", "convnet", *(f"lm_{size}" for size in LM_SIZES))
TUNING_SEED = 0

# Tuned lr per (task, method, impl, point) in this process: seeds of one case reuse it.
_tuned: dict[tuple[str, ...], tuple[float, str]] = {}


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


def tuned_lr(memo_key: tuple[str, ...], point: dict[str, Any],
             run: Callable[[float, int], WorkloadOutcome]) -> tuple[float, str]:
    """The point's lr, or the best of its ``lrs`` grid on the tuning seed (memoised per process)."""
    lrs = learning_rates(point)
    if len(lrs) == 1:
        return lrs[0], "fixed by the grid point"
    key = (*memo_key, repr(sorted(point.items())))
    if key not in _tuned:
        lr, trials = tune_lr(run, lrs, TUNING_SEED)
        scores = "; ".join(
            f"{t_lr:g}: steps {t.metrics['steps_to_target'] or 'miss'}, final {t.metrics['final_metric']:.4f}"
            for t_lr, t in trials
        )
        _tuned[key] = (lr, f"best of {len(lrs)} lrs on seed {TUNING_SEED} by steps to target ({scores})")
    return _tuned[key]


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
    """Tune (once per process and case) on seed 0, then train ``seed`` with the best learning rate.

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
