"""Plan cases, run each in an isolated worker process, and write every outcome to a shard.

A case is task x method x impl x point x dtype x device x seed. Cases run one at a time
in a long-lived worker subprocess (``python -m effbench.worker``) so that an exception,
a hang past the timeout or a crash of the process becomes a recorded result and the run
goes on with a fresh worker. Every finished case is appended to
``<shard_dir>/<run_id>.jsonl`` and flushed to disk before the next one starts.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import inspect
import json
import math
import os
import platform
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from effbench import __version__, workloads
from effbench.checks import Truth, Verdict, judge, make_truth, mutated, refill, snapshot
from effbench.kernels import _tune
from effbench.measure import TimingConfig, peak_memory, time_call
from effbench.registry import (
    FAMILIES,
    GRIDS,
    BackwardUnavailable,
    Method,
    Registry,
    Skipped,
    Unavailable,
    UsageError,
    suggest,
)
from effbench.rows import (
    SHARD_FORMAT,
    STATUSES,
    TIMED_GRIDS,
    CaseDone,
    CurvePoint,
    MethodInfo,
    Result,
    Run,
    RunDone,
    Sample,
    ShardContents,
    ShardError,
    ShardHeader,
    TaskInfo,
    TuningDone,
    TuningTrial,
    case_key,
    from_json_line,
    lines_digest,
    point_json,
    point_key,
    read_shard,
    to_json_line,
    tuning_key,
)
from effbench.tasks import DTYPES, KernelTask, WorkloadTask, metric_unit

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

WORKER_ENV = {"PYTHONUNBUFFERED": "1"}


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


@dataclass
class CaseResult:
    """What one case produced; a failure carries its status and message and no values."""

    status: str
    message: str = ""
    metrics: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # metric -> message
    measure_methods: dict[str, str] = field(default_factory=dict)  # metric -> how it was measured
    samples: dict[str, list[float]] = field(default_factory=dict)
    curve: list[tuple[int, float, float | None, float | None, float | None]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CaseResult:
        data = json.loads(text)
        data["curve"] = [tuple(p) for p in data["curve"]]
        return cls(**data)


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


def shard_of(registry: Registry, cases: Sequence[Case], index: int, count: int) -> list[Case]:
    """The cases of shard ``index`` of ``count``, by a hash of what must stay together (so the same on
    every machine, whatever the plan's order): a kernel case's seeds and implementations share a
    shard (one float64 truth), a workload point's methods and seeds too (the baseline comparison)."""
    def group(case: Case) -> str:
        if isinstance(registry.tasks[case.task], WorkloadTask):
            return "\x1f".join((case.task, case.point_key, case.dtype, case.device))
        return "\x1f".join((case.task, case.method, case.point_key, case.dtype, case.device))

    def bucket(case: Case) -> int:
        return int.from_bytes(hashlib.sha256(group(case).encode()).digest()[:8], "big") % count

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


# --------------------------------------------------------------------------- in the worker


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = " ".join(str(exc).split())
    if len(text) > 400:
        text = text[:400] + "..."
    return f"{type(exc).__name__}: {text}{where}"


class _TruthCache:
    """The float64 truths of the latest (method, point, dtype, device, seed) and of its refill check: every
    implementation of a case shares them. Each is computed from a snapshot of freshly made inputs, before
    any implementation ran, so none can depend on what an implementation did."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.entries: dict[tuple[Any, ...], Truth] = {}

    def get(self, key: tuple[Any, ...], make: Callable[[], Truth]) -> Truth:
        if key not in self.entries:
            while len(self.entries) >= self.size:  # free the oldest before building a new one
                self.entries.pop(next(iter(self.entries)))
            self.entries[key] = make()
        return self.entries[key]


REFILL_SEED = 1_000_003  # the refill check draws inputs of seed + this: values no timed call has seen


def _truth_of(task: KernelTask, method: Method, point: dict[str, Any], pristine: Any, device: str) -> Truth:
    return make_truth(lambda inputs: task.outputs(method.reference.fn, inputs, point), pristine, device)


def _outputs(task: KernelTask, impl: Any, inputs: dict[str, Any], point: dict[str, Any],
             forward_only: bool) -> dict[str, torch.Tensor]:
    if forward_only:
        assert task.forward_outputs is not None
        return task.forward_outputs(impl.fn, inputs, point)
    return task.outputs(impl.fn, inputs, point)


def _mutation(task: KernelTask, inputs: dict[str, Any], pristine: dict[str, Any], when: str) -> CaseResult | None:
    """``error`` naming the inputs an implementation changed (but those the task lets it update)."""
    changed = [name for name in mutated(inputs, pristine) if name.split("[")[0].split(".")[0] not in task.in_place]
    if not changed:
        return None
    more = f" (and {', '.join(repr(n) for n in changed[1:4])})" if len(changed) > 1 else ""
    return CaseResult(status="error", message=f"mutated input {changed[0]!r}{more} {when}: an implementation "
                                              "must not change its inputs")


def _kernel_case(
    task: KernelTask, method: Method, case: Case, config: RunConfig, cache: _TruthCache
) -> CaseResult:
    impl = method.impls[case.impl]
    dtype = DTYPES[case.dtype]
    inputs = task.make_inputs(case.point, dtype, case.device, case.seed, method)
    pristine = snapshot(inputs)  # before anything runs: the truth is made from this, never from `inputs`
    key = (case.task, case.method, case.point_key, case.dtype, case.device, case.seed)
    truth = cache.get(key, lambda: _truth_of(task, method, case.point, pristine, case.device))
    if truth.broken:
        return CaseResult(status="error", message=f"broken reference: the float64 truth of {truth.broken[0]!r} has "
                                                  "non-finite values (a reference must be finite where it is checked)")
    forward_only = ""  # why the backward cannot run here, when only the forward is checked and measured
    _tune.forget()  # an autotuned kernel tunes in this first call, outside the timed calls below
    try:
        outputs = task.outputs(impl.fn, inputs, case.point)
    except BackwardUnavailable as exc:
        if task.forward_outputs is None:
            raise
        forward_only = f"forward only: {exc}"
        outputs = task.forward_outputs(impl.fn, inputs, case.point)
    bad = _mutation(task, inputs, pristine, "while computing its outputs")
    if bad is not None:
        return bad
    names = sorted(outputs) if forward_only else None  # a forward-only case: the outputs it has
    verdict = judge(outputs, truth, task.tolerance[case.dtype], names)
    outputs = {}  # free them before timing
    result = CaseResult(status=verdict.status, message=verdict.message or forward_only)
    _error_metrics(result, verdict, truth)
    # Speed and memory once per (point, dtype): on the first seed. Never of Triton's CPU interpreter.
    interpreted = case.device == "cpu" and "triton" in impl.needs and os.environ.get("TRITON_INTERPRET") == "1"
    if case.seed != 0:
        return result
    if interpreted:
        result.metrics.update(time_ms=None, peak_mem_bytes=None)
        result.notes["time_ms"] = result.notes["peak_mem_bytes"] = "not measured: Triton's CPU interpreter"
        return result
    if forward_only:
        result.metrics.update(time_ms=None, peak_mem_bytes=None)
        result.notes["time_ms"] = result.notes["peak_mem_bytes"] = forward_only
        _add_derived(task, impl, inputs, case, method, result, None, config.timing)
    else:
        call = task.timed_call(impl.fn, inputs, case.point)
        timing = time_call(call, case.device, config.timing)
        memory = peak_memory(call, case.device)
        del call
        result.metrics.update(
            time_ms=timing.median_ms,
            time_p20_ms=timing.p20_ms,
            time_p80_ms=timing.p80_ms,
            peak_mem_bytes=float(memory.delta_bytes),
            peak_mem_abs_bytes=float(memory.abs_bytes),
        )
        result.samples["time_ms"] = timing.samples_ms
        configs = _tune.chosen()
        if configs:  # what the timed calls launched: the autotuner's choice for these sizes
            result.notes["time_ms"] = "autotuned kernel configs: " + "; ".join(f"{k}: {v}" for k, v in configs.items())
        _add_derived(task, impl, inputs, case, method, result, timing.median_ms, config.timing)
        for name in ("time_ms", "time_p20_ms", "time_p80_ms"):
            result.measure_methods[name] = timing.method
        result.measure_methods["peak_mem_bytes"] = memory.method
        result.measure_methods["peak_mem_abs_bytes"] = memory.method
    bad = _mutation(task, inputs, pristine, "while it was timed")
    if bad is not None:
        return bad
    if result.status == "ok":
        _check_unseen_values(task, method, impl, case, inputs, cache, bool(forward_only), result)
    return result


def _error_metrics(result: CaseResult, verdict: Verdict, truth: Truth) -> None:
    """The case's worst error, the reference's own (naive) error, their ratio, and every output's error."""
    naive = max((truth.naive[k] for k in verdict.errors if k in truth.naive), default=0.0)
    ratios = [e / truth.naive[k] for k, e in verdict.errors.items()
              if truth.naive.get(k, 0) > 0 and math.isfinite(truth.naive[k])]
    result.metrics["rel_error"] = verdict.worst
    result.metrics["naive_rel_error"] = naive
    result.metrics["error_ratio"] = max(ratios) if ratios else None
    detail = ", ".join(f"{k}={v:.2e} (tolerance {verdict.thresholds.get(k, math.nan):.2e})"
                       for k, v in verdict.errors.items())
    result.notes["rel_error"] = f"per output: {detail}"
    result.measure_methods.update(
        rel_error="max over outputs of ||out-ref||/||ref|| vs float64 reference",
        naive_rel_error="reference impl in case dtype vs float64 (worst output)",
        error_ratio="max over outputs of rel_error / naive_rel_error",
    )
    for name, error in verdict.errors.items():
        metric = f"rel_error_{name}"
        result.metrics[metric] = error
        result.notes[metric] = (f"tolerance {verdict.thresholds.get(name, math.nan):.2e} "
                                f"(naive {truth.naive.get(name, math.nan):.2e})")
        result.measure_methods[metric] = "||out-ref||/||ref|| of this output vs float64 reference"


def _check_unseen_values(task: KernelTask, method: Method, impl: Any, case: Case, inputs: dict[str, Any],
                         cache: _TruthCache, forward_only: bool, result: CaseResult) -> None:
    """What was timed, checked once more after new values were written into the very tensors the timed calls
    reused: a result kept from an earlier call (keyed by the tensors' address or identity) is now stale."""
    fresh = task.make_inputs(case.point, DTYPES[case.dtype], case.device, case.seed + REFILL_SEED, method)
    pristine = snapshot(fresh)
    refill(inputs, fresh)
    del fresh
    key = (case.task, case.method, case.point_key, case.dtype, case.device, case.seed + REFILL_SEED)
    truth = cache.get(key, lambda: _truth_of(task, method, case.point, pristine, case.device))
    outputs = _outputs(task, impl, inputs, case.point, forward_only)
    verdict = judge(outputs, truth, task.tolerance[case.dtype], sorted(outputs) if forward_only else None)
    if verdict.status != "ok" and not truth.broken:
        result.status = "wrong"
        result.message = (f"{verdict.message}, on new values written into the tensors the timed calls reused "
                          "(is a result kept from an earlier call?)")


def _add_derived(task: KernelTask, impl: Any, inputs: dict[str, Any], case: Case, method: Method,
                 result: CaseResult, time_ms: float | None, timing: TimingConfig) -> None:
    """The task's own seed-0 metrics; ``time_ms`` is None for a forward-only case. A ``derived`` that takes
    ``timing`` times what it measures with the grid's settings, like the case itself."""
    if task.derived is None:
        return
    extra = {"timing": timing} if "timing" in inspect.signature(task.derived).parameters else {}
    for name, value in task.derived(impl.fn, inputs, case.point, method, time_ms, **extra).items():
        result.metrics[name] = value
        result.measure_methods[name] = f"by {case.task}'s derived metrics (its docstring)"


def _workload_case(task: WorkloadTask, method: Method, case: Case, tuned: dict[str, Any] | None) -> CaseResult:
    impl = method.impls[case.impl]
    if task.prepare is not None:
        task.prepare(case.point)
    holder: list[Any] = []
    start = time.perf_counter()
    with workloads.preset(tuned):
        memory = peak_memory(
            lambda: holder.append(task.run(method, impl, case.point, case.seed, case.device, DTYPES[case.dtype])),
            case.device,
        )
    wall = time.perf_counter() - start
    outcome = holder[0]
    result = CaseResult(status="ok")
    result.metrics.update(outcome.metrics)
    result.metrics["peak_mem_bytes"] = float(memory.delta_bytes)
    result.metrics["wall_s"] = wall
    result.notes.update(outcome.notes)
    result.measure_methods["peak_mem_bytes"] = memory.method + " over the whole training run"
    result.measure_methods["wall_s"] = "perf_counter"
    result.curve = [(c.step, c.wall_s, c.train_loss, c.eval_loss, c.eval_metric) for c in outcome.curve]
    bad = [k for k, v in outcome.metrics.items() if v is not None and not math.isfinite(v)]
    if bad:
        result.status, result.message = "wrong", f"non-finite {', '.join(bad)}"
    return result


def apply_memory_limit(config: RunConfig) -> None:
    """Cap this process's memory (call it in a worker only): past the cap an allocation fails and the
    case is recorded ``oom``. On the CPU the cap is RLIMIT_DATA, which covers the whole process (Python,
    torch and the case); on CUDA a fraction of the device's memory, for the caching allocator."""
    limit = config.memory_limit_bytes
    if limit is None:
        return
    if config.device == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total))
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))


@dataclass
class TuningResult:
    """A tuning job's outcome: ``status`` as a case's; on ok, the values for the scored cases and every trial."""

    status: str
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    trials: list[dict[str, Any]] = field(default_factory=list)  # workloads.TrialRecord as dicts

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TuningResult:
        return cls(**json.loads(text))


def needs_tuning(registry: Registry, case: Case) -> bool:
    """A workload case whose point has a setting to tune: a tuning job runs before its scored seeds."""
    return isinstance(registry.tasks[case.task], WorkloadTask) and workloads.needs_tuning(case.point)


def execute_tuning(registry: Registry, case: Case) -> TuningResult:
    """A workload case's tuning job, in this process: the task's run on the tuning seed, stopped where the
    scored training would start (``workloads.TuningComplete``). ``case.seed`` is ignored."""
    try:
        task = registry.task(case.task)
        method = registry.methods[(case.task, case.method)]
        impl = method.impls[case.impl]
        if task.prepare is not None:
            task.prepare(case.point)
        torch.manual_seed(workloads.TUNING_SEED)
        with workloads.tuning_job() as job:
            try:
                task.run(method, impl, case.point, workloads.TUNING_SEED, case.device, DTYPES[case.dtype])
            except workloads.TuningComplete:
                pass
        if not job.values:
            return TuningResult("error", "the tuning job tuned nothing: the task never asked for a tuned value")
        return TuningResult("ok", values=job.values, trials=[dataclasses.asdict(t) for t in job.trials])
    except Unavailable as exc:
        return TuningResult("unavailable", str(exc))
    except Skipped as exc:
        return TuningResult("skipped", str(exc))
    except Exception as exc:  # noqa: BLE001 - a failed tuning job fails its scored cases, with the reason
        return TuningResult("oom" if _is_oom(exc) else "error", _describe(exc))
    finally:
        if case.device == "cuda":
            torch.cuda.empty_cache()


def execute(registry: Registry, case: Case, config: RunConfig, cache: _TruthCache | None = None,
            tuned: dict[str, Any] | None = None) -> CaseResult:
    """Run one case in this process; never raises for a failure of the case itself. ``tuned``: a workload
    case's values from its tuning job (``execute_tuning``); None tunes inline (outside the runner)."""
    cache = cache or _TruthCache()
    try:
        task = registry.task(case.task)
        method = registry.methods[(case.task, case.method)]
        impl = method.impls[case.impl]
        blocked = impl.why_not(case.device, case.dtype)
        if blocked:
            return CaseResult(status=blocked[0], message=blocked[1])
        torch.manual_seed(case.seed)
        if isinstance(task, KernelTask):
            return _kernel_case(task, method, case, config, cache)
        return _workload_case(task, method, case, tuned)
    except Unavailable as exc:
        return CaseResult(status="unavailable", message=str(exc))
    except Skipped as exc:
        return CaseResult(status="skipped", message=str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure of a case becomes a result
        return CaseResult(status="oom" if _is_oom(exc) else "error", message=_describe(exc))
    finally:
        if case.device == "cuda":
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------- in the parent


class WorkerError(RuntimeError):
    """The worker process could not start."""


def oom_kills() -> int | None:
    """The kernel's count of processes its OOM killer has killed (Linux >= 4.13), None when unknown."""
    try:
        with open("/proc/vmstat") as vmstat:
            for line in vmstat:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class Worker:
    """A ``python -m effbench.worker`` subprocess speaking JSON lines over its stdin/stdout."""

    def __init__(self, plugins: Sequence[str], startup_timeout_s: float = 300.0) -> None:
        env = dict(os.environ)
        env.update(WORKER_ENV, EFFBENCH_WORKER_PARENT=str(os.getpid()))
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "effbench.worker", json.dumps(list(plugins))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            # its own session: signals to the terminal's process group (Ctrl-C, a CI cancel) reach the
            # parent only, which ends the worker itself instead of losing the case in flight as an error
            start_new_session=True,
        )
        self.buffer = b""
        self.eof = False
        self.oom_kills_before: int | None = None
        line = self._read_line(time.monotonic() + startup_timeout_s)
        if line is None or not line.startswith("ready"):
            self.kill()
            raise WorkerError(f"worker failed to start: {line or self.stderr_tail()}")

    def _read_line(self, deadline: float) -> str | None:
        """One line from the worker; None on timeout (``self.eof`` tells an end of stream apart)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.eof = True
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def stderr_tail(self, n: int = 400) -> str:
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - n))
        return " ".join(self.stderr.read().decode(errors="replace").split())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, case: Case, config: RunConfig, tuned: dict[str, Any] | None = None) -> CaseResult:
        reply = self._exchange({"job": "case", "case": dataclasses.asdict(case), "config": _config_dict(config),
                                "tuned": tuned}, config.timeout_s)
        if isinstance(reply, CaseResult):
            return reply
        try:
            return CaseResult.from_json(reply)
        except (ValueError, TypeError) as exc:
            self.kill()  # the protocol is broken: start afresh
            return CaseResult(status="error", message=f"unreadable worker reply ({exc}): {reply[:200]}")

    def tune(self, case: Case, config: RunConfig, timeout_s: float) -> TuningResult:
        reply = self._exchange({"job": "tune", "case": dataclasses.asdict(case), "config": _config_dict(config)},
                               timeout_s)
        if isinstance(reply, CaseResult):
            return TuningResult(reply.status, reply.message)
        try:
            return TuningResult.from_json(reply)
        except (ValueError, TypeError) as exc:
            self.kill()
            return TuningResult("error", f"unreadable worker reply ({exc}): {reply[:200]}")

    def _exchange(self, message: dict[str, Any], timeout_s: float) -> str | CaseResult:
        """Send one job; its reply line, or the failure (timeout, crash) as a CaseResult."""
        assert self.proc.stdin is not None
        self.oom_kills_before = oom_kills()
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._crashed()
        line = self._read_line(time.monotonic() + timeout_s)
        if line is not None:
            return line
        if not self.eof and self.alive():
            self.kill()
            return CaseResult(status="timeout", message=f"no result within {timeout_s:g} s; worker killed")
        return self._crashed()

    def _crashed(self) -> CaseResult:
        code = self.proc.wait()
        if code < 0:
            try:
                how = f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        tail = self.stderr_tail()
        status = "error"
        if code == -signal.SIGKILL:
            # The kernel's OOM killer sends SIGKILL, and so does `kill -9`: its counter tells them apart.
            after = oom_kills()
            if after is not None and self.oom_kills_before is not None and after > self.oom_kills_before:
                status, how = "oom", how + " (by the kernel's OOM killer)"
            elif after is None:
                how += " (the OOM killer or kill -9: this kernel does not count OOM kills)"
            else:
                how += " (not by the OOM killer)"
        return CaseResult(status=status, message=f"worker process {how}" + (f"; stderr: {tail}" if tail else ""))

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.alive():
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.kill()
        self.stderr.close()


def _config_dict(config: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    data = dict(data)
    data["timing"] = TimingConfig(**data["timing"])
    return RunConfig(**data)


def _git(*args: str) -> str | None:
    """git about the checkout effbench runs from (not the working directory: asv runs suites in a
    temporary one); None when effbench is not in a git checkout."""
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str | None:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _triton_version() -> str | None:
    try:
        import triton

        return triton.__version__
    except ImportError:
        return None


# The published implementations a run may compare against (and Triton, which ours need): their versions
# are part of every run's provenance.
PEER_PACKAGES = ("triton", "pytorch-optimizer", "schedulefree", "cut-cross-entropy", "liger-kernel", "flash-attn",
                 "xformers")


def peer_versions() -> dict[str, str]:
    """{package: version} of the peer packages installed here (absent ones left out)."""
    from importlib import metadata

    found = {}
    for name in PEER_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def gpu_state() -> tuple[str | None, str | None]:
    """(driver version, JSON of the first GPU's SM and memory clocks in MHz) from NVML, when pynvml is there
    (``pip install effbench[gpu]``); clocks decide what a GPU time means, and a throttled GPU is slower."""
    try:
        import pynvml
    except ImportError:
        return None, None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        driver = pynvml.nvmlSystemGetDriverVersion()
        clocks = {
            "sm_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "sm_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "mem_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "mem_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM),
        }
    except Exception:  # noqa: BLE001 - NVML missing or refusing: provenance unknown, the run goes on
        return None, None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - never initialised
            pass
    driver = driver.decode() if isinstance(driver, bytes) else str(driver)
    return driver, json.dumps(clocks, sort_keys=True)


def new_run(config: RunConfig, command: str, source: str = "effbench") -> Run:
    """Provenance of a run on this machine."""
    now = datetime.now(timezone.utc)
    driver, clocks = gpu_state() if config.device == "cuda" else (None, None)
    return Run(
        run_id=f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}",
        started_at=now.isoformat(timespec="seconds"),
        git_commit=_git("rev-parse", "HEAD"),
        git_branch=_git("rev-parse", "--abbrev-ref", "HEAD"),
        machine=platform.node(),
        device=config.device,
        gpu_name=torch.cuda.get_device_name() if config.device == "cuda" else None,
        cpu_name=_cpu_name(),
        num_threads=torch.get_num_threads(),
        python_version=platform.python_version(),
        torch_version=torch.__version__,
        triton_version=_triton_version(),
        cuda_version=torch.version.cuda,
        effbench_version=__version__,
        grid=config.grid,
        source=source,
        command=command,
        peers=json.dumps(peer_versions(), sort_keys=True),
        driver_version=driver,
        gpu_clocks=clocks,
    )


def _known_status(result: CaseResult) -> CaseResult:
    if result.status in STATUSES:
        return result
    return CaseResult(status="error", message=f"unknown status {result.status!r}: {result.message}")


def result_rows(
    registry: Registry, run: Run, case: Case, result: CaseResult
) -> list[Result | Sample | CurvePoint]:
    """Rows of one case. A failed case gets one row per metric its task declares, valued NULL."""
    task = registry.tasks[case.task]
    method = registry.methods[(case.task, case.method)]
    result = _known_status(result)
    if result.status in ("ok", "wrong"):
        metrics = dict(result.metrics)
    else:
        # Kernel tasks time and measure memory on seed 0 only; later seeds check accuracy.
        later_seed = isinstance(task, KernelTask) and case.seed > 0
        metrics = {m: None for m in task.metrics if not (later_seed and m in ("time_ms", "peak_mem_bytes"))}
    code_hash = registry.code_hash(method)
    common = dict(
        run_id=run.run_id, task=case.task, method=case.method, impl=case.impl,
        point_key=case.point_key, dtype=case.dtype, device=case.device, seed=case.seed,
    )
    rows: list[Result | Sample | CurvePoint] = []
    for metric, value in metrics.items():
        message = result.message or result.notes.get(metric, "")
        if result.status == "ok" and result.notes.get(metric):
            message = result.notes[metric]
        rows.append(
            Result(
                family=case.family, point=point_json(case.point), metric=metric,
                value=None if value is None else float(value), unit=metric_unit(metric),
                status=result.status, message=message,
                measure_method=result.measure_methods.get(metric, ""), code_hash=code_hash, **common,
            )
        )
    for metric, samples in result.samples.items():
        rows.extend(Sample(metric=metric, idx=i, value=v, **common) for i, v in enumerate(samples))
    for step, wall, train_loss, eval_loss, eval_metric in result.curve:
        rows.append(CurvePoint(step=step, wall_s=wall, train_loss=train_loss, eval_loss=eval_loss,
                               eval_metric=eval_metric, **common))
    return rows


def tuning_rows(run: Run, case: Case, result: TuningResult) -> list[TuningTrial]:
    """The tuning table's rows of one tuning job (none when it failed: its status is in the TuningDone)."""
    return [TuningTrial(run_id=run.run_id, task=case.task, method=case.method, impl=case.impl,
                        point_key=case.point_key, dtype=case.dtype, device=case.device, seed=t["seed"],
                        param=t["param"], value=float(t["value"]),
                        score=None if t["score"] is None else float(t["score"]),
                        final_metric=None if t["final_metric"] is None else float(t["final_metric"]),
                        chosen=bool(t["chosen"]), note=t["note"]) for t in result.trials]


def _tuning_from_record(done: TuningDone) -> TuningResult:
    return TuningResult(done.status, done.message, json.loads(done.values))


def task_infos(registry: Registry, cases: Sequence[Case]) -> list[TaskInfo]:
    infos = []
    for key in sorted({c.task for c in cases}):
        task = registry.tasks[key]
        workload = isinstance(task, WorkloadTask)
        baseline = task.baseline if workload else None
        impls = registry.methods[(key, baseline)].impls if (key, baseline) in registry.methods else {}
        baseline_impl = ("reference" if "reference" in impls else next(iter(impls))) if impls else None
        compare = [[m, higher] for m, higher in task.compare] if workload else []
        infos.append(TaskInfo(task.family, key, task.kind, baseline, baseline_impl, json.dumps(compare),
                              task.target if workload else "", task.description))
    return infos


def method_infos(registry: Registry, cases: Sequence[Case]) -> list[MethodInfo]:
    seen = sorted({(c.task, c.method) for c in cases})
    infos = []
    for key in seen:
        m = registry.methods[key]
        infos.append(MethodInfo(m.family, m.task, m.name, ",".join(m.impls), m.paper, m.arxiv, m.summary))
    return infos


def shard_path(shard_dir: Path, run: Run) -> Path:
    return shard_dir / f"{run.run_id}.jsonl"


def plan_fingerprint(config: RunConfig, cases: Sequence[Case], plugins: Sequence[str] = ()) -> str:
    """What makes two invocations the same run: the configuration, the cases, the plugins and the commit.
    A run is resumed only by an invocation with the same fingerprint."""
    payload = json.dumps({
        "config": _config_dict(config),
        "cases": sorted(c.key for c in cases),
        "plugins": sorted(plugins),
        "commit": _git("rev-parse", "HEAD"),
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ShardBusy(UsageError):
    """Another process is writing this shard (it is running or resuming the same run)."""


class Shard:
    """Append-only JSONL file, one per run. Each case's rows go out in one write, closed by a CaseDone
    record (count and checksum), flushed and fsynced before the next case starts; the run ends with a
    RunDone. An exclusive lock keeps a second process from appending to the same shard."""

    def __init__(self, path: Path, header: ShardHeader | None = None, resume_at: int | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.file = open(path, "a+b")  # noqa: SIM115 - closed in close()
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise ShardBusy(f"{path} is being written by another effbench process") from None
        if resume_at is not None:
            self.file.truncate(resume_at)  # drop the tail a killed writer left mid-case
        self.header = header
        self.run_id = header.run_id if header else ""
        self.cases = 0

    def _append(self, lines: Sequence[str]) -> None:
        self.file.seek(0, os.SEEK_END)
        self.file.write("".join(line + "\n" for line in lines).encode("utf-8"))
        self.file.flush()
        os.fsync(self.file.fileno())

    def start(self, records: Sequence[Any]) -> None:
        """The header and the records outside any case (run, methods), in one write."""
        self._append([to_json_line(r) for r in ([self.header] if self.header else []) + list(records)])

    def write_case(self, case: Case, status: str, rows: Sequence[Any], wall_s: float | None = None) -> None:
        lines = [to_json_line(r) for r in rows]
        done = CaseDone(self.run_id, case.key, status, len(lines), lines_digest(lines), wall_s, _now())
        self._append([*lines, to_json_line(done)])
        self.cases += 1

    def write_tuning(self, case: Case, result: TuningResult, rows: Sequence[Any], wall_s: float) -> None:
        lines = [to_json_line(r) for r in rows]
        group = tuning_key(case.task, case.method, case.impl, case.point_key, case.dtype, case.device)
        done = TuningDone(self.run_id, group, result.status, result.message, json.dumps(result.values), len(lines),
                          lines_digest(lines), wall_s)
        self._append([*lines, to_json_line(done)])

    def write_end(self, rows: Sequence[Any]) -> None:
        lines = [to_json_line(r) for r in rows]
        self._append([*lines, to_json_line(RunDone(self.run_id, self.cases, len(lines), lines_digest(lines), _now()))])

    def close(self) -> None:
        self.file.close()


def find_resumable(shard_dir: Path, fingerprint: str) -> tuple[Path, ShardContents] | None:
    """The run of this fingerprint in ``shard_dir`` to resume: of the unfinished ones, the one with the most
    finished cases (the newest of equals), so that a fresh run started and stopped after an interruption
    does not strand the earlier run's work; when every one finished, the newest."""
    if not shard_dir.is_dir():
        return None
    found = []
    for path in shard_dir.glob("*.jsonl"):
        try:
            with open(path, "rb") as file:
                first = from_json_line(file.readline().decode("utf-8"))
        except (OSError, ValueError):
            continue  # not ours to judge here: ingest reports unreadable shards
        if isinstance(first, ShardHeader) and first.plan == fingerprint:
            found.append((first.run_id, path))
    if not found:
        return None
    candidates = []
    for run_id, path in found:
        try:
            contents = read_shard(path)
        except ShardError as exc:
            raise UsageError(f"cannot resume from {path}: {exc}") from None
        # run ids start with their UTC start time: the last key breaks ties by age
        candidates.append(((not contents.complete, len(contents.done) if not contents.complete else 0, run_id),
                           path, contents))
    _, path, contents = max(candidates, key=lambda c: c[0])
    return path, contents


@dataclass
class RunSummary:
    run: Run
    shard: Path
    counts: dict[str, int]
    failures: list[tuple[Case, CaseResult]]
    resumed: int = 0  # cases finished by the earlier part of a resumed run
    dropped: int = 0  # planned cases not run: an earlier point covered the method (GRID_POINTS)
    by_task: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> status -> cases

    @property
    def ran(self) -> int:
        return sum(self.counts.values())


def run_cases(
    registry: Registry,
    cases: Sequence[Case],
    config: RunConfig,
    shard_dir: Path,
    command: str = "",
    on_case: Callable[[Case, CaseResult], None] | None = None,
    on_start: Callable[[Case], None] | None = None,
    on_drop: Callable[[Case], None] | None = None,
    in_process: bool = False,
    run: Run | None = None,
    resume: ShardContents | None = None,
) -> RunSummary:
    """Run ``cases``, writing each outcome to the run's shard (``shard_path(shard_dir, run)``) as it finishes.

    ``resume``: the contents of an unfinished shard of the same plan (``find_resumable``); the run
    goes on in that shard under its run id, and the cases it finished are not run again.
    ``on_start(case)`` is called as a case starts, ``on_case(case, result)`` once it is in the shard,
    ``on_drop(case)`` for a planned case that does not run because an earlier point of the grid covered
    its method (``config.points == "first_covered"``).
    An exception (an interrupt) ends the worker and propagates; every case finished before it is in
    the shard.
    ``in_process=True`` runs cases in this process (no isolation from crashes or hangs):
    for tests and debugging only.
    """
    if resume is not None:
        if resume.header is None or resume.run is None or resume.complete:
            raise UsageError("only an unfinished shard of format 2 or later can be resumed")
        run = resume.run
        shard = Shard(shard_path(shard_dir, run), resume.header, resume_at=resume.good_bytes)
        shard.cases = len(resume.done)
        tunings = {group: _tuning_from_record(done) for group, done in resume.tuning.items()}
    else:
        run = run or new_run(config, command)
        header = ShardHeader(SHARD_FORMAT, run.run_id, plan_fingerprint(config, cases, registry.plugins), len(cases))
        shard = Shard(shard_path(shard_dir, run), header)
        shard.start([run, *method_infos(registry, cases), *task_infos(registry, cases)])
        tunings = {}
    counts = dict.fromkeys(STATUSES, 0)
    failures: list[tuple[Case, CaseResult]] = []
    worker: Worker | None = None
    cache = _TruthCache()
    first_covered = config.points == "first_covered"
    covered: set[tuple[str, ...]] = set()  # lineages that ran at an earlier point
    dropped = 0
    by_task: dict[str, dict[str, int]] = {}

    def tune(case: Case) -> TuningResult:
        """The tuning job of the case's group: run once (before its first scored seed), written to the shard
        with every trial; a resumed run reuses the one its shard holds."""
        nonlocal worker
        group = tuning_key(case.task, case.method, case.impl, case.point_key, case.dtype, case.device)
        if group not in tunings:
            started = time.perf_counter()
            if in_process:
                result = execute_tuning(registry, case)
            else:
                if worker is None or not worker.alive():
                    worker = Worker(registry.plugins)
                # every lr of the grid, and a prior run per lr for a schedule built from one: a hang guard
                budget = config.timeout_s * 2 * (len(workloads.learning_rates(case.point)) + 1)
                result = worker.tune(case, config, budget)
            shard.write_tuning(case, result, tuning_rows(run, case, result), round(time.perf_counter() - started, 4))
            tunings[group] = result
        return tunings[group]

    try:
        for case in cases:
            if case.lineage in covered:
                dropped += 1  # an earlier point of the grid covered this method (GRID_POINTS)
                if on_drop is not None:
                    on_drop(case)
                continue
            if resume is not None and case.key in resume.done:
                status = resume.done[case.key].status
                counts[status] = counts.get(status, 0) + 1
                tally = by_task.setdefault(case.task, {})
                tally[status] = tally.get(status, 0) + 1
                if first_covered and status != "skipped":
                    covered.add(case.lineage)
                continue
            if on_start is not None:
                on_start(case)
            impl = registry.methods[(case.task, case.method)].impls[case.impl]
            blocked = impl.why_not(case.device, case.dtype)
            tuning = None if blocked or not needs_tuning(registry, case) else tune(case)
            started = time.perf_counter()  # after its group's tuning job: a case's time is its own
            if blocked:  # no need to start a process to learn that a package is missing
                result = CaseResult(status=blocked[0], message=blocked[1])
            elif tuning is not None and tuning.status != "ok":
                failed = tuning.status not in ("skipped", "unavailable")
                result = CaseResult(status=tuning.status,
                                    message=f"tuning failed: {tuning.message}" if failed else tuning.message)
            elif in_process:
                result = execute(registry, case, config, cache, None if tuning is None else tuning.values)
            else:
                if worker is None or not worker.alive():
                    worker = Worker(registry.plugins)
                result = worker.run(case, config, None if tuning is None else tuning.values)
            result = _known_status(result)
            shard.write_case(case, result.status, result_rows(registry, run, case, result),
                             wall_s=round(time.perf_counter() - started, 4))
            counts[result.status] = counts.get(result.status, 0) + 1
            tally = by_task.setdefault(case.task, {})
            tally[result.status] = tally.get(result.status, 0) + 1
            if first_covered and result.status != "skipped":
                covered.add(case.lineage)
            if result.status not in ("ok", "skipped", "unavailable"):
                failures.append((case, result))
            if on_case is not None:
                on_case(case, result)
        shard.write_end([])
    except BaseException:
        if worker is not None:
            worker.kill()  # interrupted: the case in flight is lost, everything before it is in the shard
        raise
    else:
        if worker is not None:
            worker.close()
    finally:
        shard.close()
    resumed = len(resume.done) if resume is not None else 0
    return RunSummary(run, shard.path, counts, failures, resumed, dropped, by_task)
