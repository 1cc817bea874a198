"""Metric declarations: each metric's unit, which direction is better, and on which seeds it is measured.

A task emits metrics by name; what a name means is declared once, here for the metrics every task of a kind
shares and in the task's own file (``Task.declares``) for the rest. The runner writes the unit into every
row, the store keeps each task's declarations (``tasks.metrics``), asv reads the unit and direction, and the
significance tests and the site read the direction. Stdlib only: the store and the site read it without torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BETTER = ("lower", "higher", None)  # None: a descriptor (a density, a learning rate, a count), not a score
SCOPES = ("seed", "seed0")  # each seed's own row, or measured once on seed 0 (speed, memory)


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: str | None
    scope: str = "seed"
    about: str = ""  # what a reader must know (a FLOP convention, what is counted)

    def __post_init__(self) -> None:
        if self.better not in BETTER:
            raise ValueError(f"metric {self.name}: better must be 'lower', 'higher' or None, not {self.better!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"metric {self.name}: scope must be one of {SCOPES}, not {self.scope!r}")

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    @property
    def direction(self) -> str:
        """ "lower is better", "higher is better", or "" for a descriptor."""
        return f"{self.better} is better" if self.better else ""

    def label(self) -> str:
        """``name [unit, lower is better]``: how every table header and axis names the metric."""
        parts = [p for p in (self.unit, self.direction) if p]
        return f"{self.name} [{', '.join(parts)}]" if parts else self.name

    def as_json(self) -> list[str | None]:
        return [self.unit, self.better, self.scope, self.about]


def _metrics(*specs: tuple[str, str, str | None, str] | tuple[str, str, str | None, str, str]) -> dict[str, Metric]:
    return {spec[0]: Metric(*spec) for spec in specs}


# Every kernel case: timing and memory once per (point, dtype) on seed 0, the error against float64 per seed.
KERNEL = _metrics(
    ("time_ms", "ms", "lower", "seed0", "median of the timed calls"),
    ("time_p20_ms", "ms", "lower", "seed0", "20th percentile of the timed calls"),
    ("time_p80_ms", "ms", "lower", "seed0", "80th percentile of the timed calls"),
    ("peak_mem_bytes", "bytes", "lower", "seed0", "peak memory of one call above what its inputs hold"),
    ("peak_mem_abs_bytes", "bytes", "lower", "seed0", "peak memory of one call, inputs included"),
    ("rel_error", "relative", "lower", "seed", "largest relative error of any output against float64"),
    ("naive_rel_error", "relative", "lower", "seed", "the same-dtype naive computation's error: the yardstick"),
    ("error_ratio", "ratio", "lower", "seed", "rel_error / naive_rel_error"),
    # what every kernel task that declares its work gets (effbench.roofline)
    ("work_gb_per_s", "GB/s", "higher", "seed0", "declared bytes / time"),
    ("work_tflop_s", "TFLOP/s", "higher", "seed0", "declared FLOPs / time"),
    (
        "roofline_fraction",
        "fraction",
        "higher",
        "seed0",
        "max(bytes / peak bandwidth, FLOPs / peak FLOP/s) / time; 1.0 is the device's roof",
    ),
    ("peak_gb_per_s", "GB/s", None, "seed0", "the device's bandwidth ceiling: spec sheet or measured"),
    ("peak_tflop_s", "TFLOP/s", None, "seed0", "the device's arithmetic ceiling in the case's dtype"),
)

# Every workload case, per seed.
WORKLOAD = _metrics(
    ("final_loss", "loss", "lower", "seed", "evaluation loss at the end of the budget"),
    ("final_metric", "metric", "higher", "seed", "the task's evaluation metric at the end of the budget"),
    ("steps_to_target", "steps", "lower", "seed", "first evaluation at or past the fixed target; none if missed"),
    ("time_to_target_s", "s", "lower", "seed", "training wall time to the target"),
    ("peak_mem_bytes", "bytes", "lower", "seed", "peak memory of the training run"),
    ("time_per_step_ms", "ms", "lower", "seed", "training wall time per step"),
    ("wall_s", "s", "lower", "seed", "training wall time"),
    ("examples_seen", "examples", None, "seed", "examples trained on"),
    ("examples_scored", "examples", None, "seed", "examples a sampler scored (forward passes spent on selection)"),
    ("lr", "lr", None, "seed", "the learning rate used: tuned on separate seeds, or fixed"),
    ("ece", "ece", "lower", "seed", "expected calibration error of a classifier, 15 equal-width bins"),
)

# Derived from a compared metric M by the significance test against the task's baseline.
_DERIVED = {
    "p_value_": lambda m: Metric(
        f"p_value_{m.name}", "p", None, "seed0", f"rank test of {m.name} against the baseline's seeds, corrected"
    ),
    "delta_": lambda m: Metric(f"delta_{m.name}", m.unit, m.better, "seed0", f"median {m.name} minus the baseline's"),
    "significant_": lambda m: Metric(
        f"significant_{m.name}", "bool", None, "seed0", f"{m.name} differs from the baseline's at the corrected level"
    ),
}


def resolve(name: str, declared: Mapping[str, Metric]) -> Metric | None:
    """The declaration of ``name`` among ``declared``; ``rel_error_<output>`` (each checked output's error) and
    the significance rows of a declared metric follow from it. None when nothing declares it."""
    if name in declared:
        return declared[name]
    if name.startswith("rel_error_"):
        return Metric(name, "relative", "lower", "seed", f"relative error of output {name[len('rel_error_') :]}")
    for prefix, make in _DERIVED.items():
        if name.startswith(prefix) and name[len(prefix) :] in declared:
            return make(declared[name[len(prefix) :]])
    return None


def declarations(kind: str, own: Iterable[Metric]) -> dict[str, Metric]:
    """A task's metrics: those every task of its kind shares, then its own (which may refine one)."""
    shared = KERNEL if kind == "kernel" else WORKLOAD
    table = dict(shared)
    table.update({m.name: m for m in own})
    return table


def to_json(table: Mapping[str, Metric]) -> str:
    """The ``tasks.metrics`` column: {name: [unit, better, scope, about]}."""
    return json.dumps({name: m.as_json() for name, m in sorted(table.items())}, sort_keys=True)


def from_json(text: str | None) -> dict[str, Metric]:
    """Inverse of ``to_json``; an older file without the column gives the shared declarations of both kinds."""
    if not text:
        return {**WORKLOAD, **KERNEL}
    return {name: Metric(name, *spec) for name, spec in json.loads(text).items()}
