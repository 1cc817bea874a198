"""What a run runs: grids and their settings, the case, the run configuration, the plan and its shards.

A case is task x method x impl x point x dtype x device x seed. ``make_config`` turns a grid (or a selection
grid such as ``gpu-smoke``) and the user's overrides into a ``RunConfig``; ``plan`` lists the cases the
filters select, in grid order; ``shard_of`` keeps one shard of them, by a hash of what must stay together.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from effbench.measure import TimingConfig
from effbench.registry import (
    FAMILIES,
    GRIDS,
    Registry,
    UsageError,
    suggest,
)
from effbench.rows import (
    TIMED_GRIDS,
    case_key,
    point_key,
)
from effbench.tasks import WorkloadTask

# Timing effort per grid: smoke must be quick, cpu and gpu careful.
GRID_TIMING: dict[str, TimingConfig] = {
    "smoke": TimingConfig(warmup_s=0.0, min_reps=5, max_reps=10, budget_s=0.05),
    "cpu": TimingConfig(warmup_s=0.2, min_reps=5, max_reps=100, budget_s=1.0),
    "gpu": TimingConfig(),
}


GRID_TIMEOUT_S: dict[str, float] = {"smoke": 120.0, "cpu": 900.0, "gpu": 1800.0}


# Scored seeds per case. Kernel tasks: accuracy checks on fresh inputs (seed 0 is timed). Workload tasks: the
# significance of "A beats B" rests on them (5 at least: a rank test on fewer cannot reach p < 0.05 after the
# correction for many comparisons).
DEFAULT_SEEDS: dict[str, int] = {"smoke": 1, "cpu": 3, "gpu": 3, "gpu-smoke": 1}


DEFAULT_WORKLOAD_SEEDS: dict[str, int] = {"smoke": 1, "cpu": 5, "gpu": 5, "gpu-smoke": 1}


# Which points of its grid a method runs at. "all"; or "first_covered": each (method, impl) at the first
# point of the grid (tasks list their smallest first) that it covers, i.e. where it is not skipped.
GRID_POINTS: dict[str, str] = {"smoke": "first_covered", "cpu": "all", "gpu": "all"}


MAX_SEEDS = 1000  # beyond it a plan is a typo, not a study (and would not fit in memory)


@dataclass(frozen=True)
class Pick:
    """Cases of a selection grid: one method's impls at some points (equal to the base grid's) of one task."""

    task: str
    method: str
    impls: tuple[str, ...]
    points: tuple[dict[str, Any], ...]


# Named selections of another grid's cases. gpu-smoke: the headline comparisons of a first GPU hour, about
# 8 minutes on one H100 (one seed): linear CE at the Gemma-2 point with a trained LM's softmax, AdamW at
# GPT-2 small's 124M parameters (fp32 and bf16, against the copy bandwidth), sliding-window attention at
# N = 4096 and 16384, head dim 128.
SELECTIONS: dict[str, tuple[str, tuple[Pick, ...]]] = {
    "gpu-smoke": ("gpu", (
        Pick("loss/linear_cross_entropy", "linear_cross_entropy",
             ("reference", "compile", "chunked", "triton_linear_ce", "liger", "cce", "cce_unfiltered"),
             ({"N": 8192, "D": 2304, "V": 256000, "ignore_frac": 0.0, "softmax": "trained"},)),
        Pick("optimizer/step", "adamw", ("reference", "torch_foreach", "torch_fused", "triton"),
             ({"d_model": 768, "layers": 12, "vocab": 50304, "steps": 5},)),
        Pick("attention/masked_attention", "sliding_window", ("reference", "sdpa", "flex", "triton", "flash_attn"),
             ({"B": 1, "H": 16, "N": 4096, "d": 128, "window": 512},
              {"B": 1, "H": 16, "N": 16384, "d": 128, "window": 1024})),
    )),
}


ALL_GRIDS = (*GRIDS, *SELECTIONS)


@dataclass(frozen=True)
class Case:
    """The unit of work."""

    task: str
    method: str
    impl: str
    point: dict[str, Any] = field(hash=False)
    dtype: str
    device: str
    seed: int

    @property
    def family(self) -> str:
        return self.task.split("/", 1)[0]

    @property
    def point_key(self) -> str:
        return point_key(self.point)

    @property
    def key(self) -> str:
        return case_key(self.task, self.method, self.impl, self.point_key, self.dtype, self.device, self.seed)

    @property
    def lineage(self) -> tuple[str, ...]:
        """The case but for its grid point: what ``first_covered`` runs at one point only."""
        return (self.task, self.method, self.impl, self.dtype, self.device, str(self.seed))

    def label(self) -> str:
        return f"{self.task} {self.method}/{self.impl} [{self.point_key}] {self.dtype} {self.device} seed={self.seed}"


@dataclass(frozen=True)
class RunConfig:
    grid: str
    device: str
    seeds: int
    timeout_s: float
    timing: TimingConfig
    memory_limit_bytes: int | None = None  # per worker process: RLIMIT_DATA on the CPU, a CUDA memory fraction
    points: str = "all"  # GRID_POINTS' choices
    workload_seeds: int | None = None  # scored seeds of workload tasks; None: ``seeds``

    def seeds_of(self, task: Any) -> int:
        return self.workload_seeds or self.seeds if isinstance(task, WorkloadTask) else self.seeds

    def describe_seeds(self) -> str:
        if (self.workload_seeds or self.seeds) == self.seeds:
            return f"{self.seeds} seed(s)"
        return f"{self.seeds} seed(s) per kernel case, {self.workload_seeds} per workload case"

    @property
    def base_grid(self) -> str:
        """The grid whose points, dtypes and costs this one uses (itself, or a selection's base)."""
        return SELECTIONS[self.grid][0] if self.grid in SELECTIONS else self.grid

    @property
    def timed(self) -> bool:
        """Whether this grid's times are for comparison (``TIMED_GRIDS``)."""
        return self.grid in TIMED_GRIDS


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str, available: bool = True) -> str:
    """``available``: the device must be here (False for a plan that runs nothing, e.g. a dry run)."""
    if device == "auto":
        return default_device()
    if device not in ("cpu", "cuda"):
        raise suggest("device", device, ("auto", "cpu", "cuda"))
    if available and device == "cuda" and not torch.cuda.is_available():
        raise suggest("device", device, ("auto", "cpu")) from None
    return device


def make_config(
    grid: str | None,
    device: str = "auto",
    seeds: int | None = None,
    timeout_s: float | None = None,
    memory_limit_gib: float | None = None,
    all_points: bool = False,
    dry_run: bool = False,
) -> RunConfig:
    """A run configuration with the grid's defaults filled in. ``all_points``: every point of the grid for
    every method, even on a grid that runs each method at its first covered point (smoke). ``dry_run``: a
    plan only, so the device need not be here (plan a GPU run on a laptop)."""
    device = resolve_device(device, available=not dry_run)
    grid = grid or ("gpu" if device == "cuda" else "cpu")
    if grid not in ALL_GRIDS:
        raise suggest("grid", grid, ALL_GRIDS)
    base = SELECTIONS[grid][0] if grid in SELECTIONS else grid
    if seeds is not None and not 1 <= seeds <= MAX_SEEDS:
        raise suggest("seed count", str(seeds), (f"an integer from 1 to {MAX_SEEDS}",))
    if timeout_s is not None and not timeout_s > 0:
        raise suggest("timeout", str(timeout_s), ("a number of seconds > 0",))
    if memory_limit_gib is not None and not (0 < memory_limit_gib < 1 << 20):
        raise suggest("memory limit", str(memory_limit_gib), ("a number of GiB > 0",))
    return RunConfig(
        grid=grid,
        device=device,
        seeds=seeds or DEFAULT_SEEDS[grid],
        workload_seeds=seeds or DEFAULT_WORKLOAD_SEEDS[grid],
        timeout_s=timeout_s or GRID_TIMEOUT_S[base],
        timing=GRID_TIMING[base],
        memory_limit_bytes=None if memory_limit_gib is None else int(memory_limit_gib * (1 << 30)),
        points="all" if all_points else GRID_POINTS[base],
    )


def _match_task(registry: Registry, name: str) -> list[str]:
    if name in registry.tasks:
        return [name]
    short = [key for key in registry.tasks if key.split("/", 1)[1] == name]
    if not short:
        raise suggest("task", name, registry.tasks)
    return short


def _names(spec: str | None) -> set[str] | None:
    """A filter of one name or several, comma-separated ("adamw,lion")."""
    if spec is None:
        return None
    names = {n.strip() for n in spec.split(",") if n.strip()}
    if not names:
        raise UsageError(f"empty name filter {spec!r}: give one name or several, comma-separated")
    return names


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/N"`` (1 <= i <= N) -> (i, N)."""
    try:
        index, count = (int(v) for v in spec.split("/"))
    except ValueError:
        raise UsageError(f"bad shard {spec!r}: expected i/N, e.g. 2/4") from None
    if not 1 <= index <= count:
        raise UsageError(f"bad shard {spec!r}: i must be between 1 and N")
    return index, count


def case_group(registry: Registry, case: Case) -> str:
    """What must stay together with the case, as a key: a kernel case's seeds and implementations (one
    float64 truth), a workload point's methods and seeds (the baseline comparison). ``--shard`` keeps a
    group in one shard; the Ray executor runs a group as one task."""
    if isinstance(registry.tasks[case.task], WorkloadTask):
        return "\x1f".join((case.task, case.point_key, case.dtype, case.device))
    return "\x1f".join((case.task, case.method, case.point_key, case.dtype, case.device))


def shard_of(registry: Registry, cases: Sequence[Case], index: int, count: int) -> list[Case]:
    """The cases of shard ``index`` of ``count``, by a hash of their ``case_group`` (so the same on every
    machine, whatever the plan's order)."""
    def bucket(case: Case) -> int:
        return int.from_bytes(hashlib.sha256(case_group(registry, case).encode()).digest()[:8], "big") % count

    return [c for c in cases if bucket(c) == index - 1]


def plan(
    registry: Registry,
    config: RunConfig,
    family: str | None = None,
    task: str | None = None,
    method: str | None = None,
    impl: str | None = None,
) -> list[Case]:
    """All cases selected by the filters, in an order that reuses the float64 truth."""
    if family is not None and family not in FAMILIES:
        raise suggest("family", family, FAMILIES)
    task_keys = sorted(registry.tasks) if task is None else _match_task(registry, task)
    if family is not None:
        task_keys = [k for k in task_keys if registry.tasks[k].family == family]
    methods = [m for k in task_keys for m in registry.methods_of(k)]
    wanted_methods, wanted_impls = _names(method), _names(impl)
    if wanted_methods is not None:
        for name in wanted_methods:
            if name not in {m.name for m in methods}:
                raise suggest("method", name, {m.name for m in methods})
        methods = [m for m in methods if m.name in wanted_methods]
    if wanted_impls is not None:
        valid = {i for m in methods for i in m.impls}
        for name in wanted_impls:
            if name not in valid:
                raise suggest("impl", name, valid)
    picks = {(p.task, p.method): p for p in SELECTIONS[config.grid][1]} if config.grid in SELECTIONS else None
    cases: list[Case] = []
    for m in methods:
        t = registry.tasks[m.task]
        impls = sorted(m.impls, key=lambda name: (name != "reference", name))
        if wanted_impls is not None:
            impls = [i for i in impls if i in wanted_impls]
        points = t.grids[config.base_grid]
        if picks is not None:  # a selection grid: only its methods, impls and points
            pick = picks.get((m.task, m.name))
            if pick is None:
                continue
            impls = [i for i in impls if i in pick.impls]
            points = [p for p in points if p in pick.points]
        for point in points:
            for dtype in t.dtypes[config.base_grid]:
                for seed in range(config.seeds_of(t)):
                    for name in impls:
                        cases.append(Case(m.task, m.name, name, dict(point), dtype, config.device, seed))
    return cases


def _config_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    data = dict(data)
    data["timing"] = TimingConfig(**data["timing"])
    return RunConfig(**data)
