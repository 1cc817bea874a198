"""The one schema between the runner and the store: plain, frozen records (stdlib only).

A run shard (``results/runs/<run_id>.jsonl``) is one JSON object per line, each with a
``type`` field naming one of the record classes below. ``effbench.run.shards`` writes and
verifies shards; the store ingests them. Neither knows the other's internals.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 4  # 2: runs.ended_at and the cases table (each case's wall time); 3: the tuning table;
# 4: results.node and results.node_hardware (which node ran each case), tasks.metrics (metric declarations)

# The families, in the order pages and listings show them: the one list (the registry checks tasks against it,
# the site and the CLI read it).
FAMILIES = ("loss", "optimizer", "sampler", "attention")
# Every case ends with exactly one of these.
STATUSES = ("ok", "error", "oom", "timeout", "unavailable", "skipped", "wrong")
# Grids whose times are for comparison. The smoke grid's are not (no warm-up, a few repetitions): enough to
# check that a number comes out, too few to compare two numbers. ``compare`` and the site honour this.
TIMED_GRIDS = ("cpu", "gpu", "gpu-smoke")


@dataclass(frozen=True)
class Run:
    """Provenance of one invocation of the runner (or one ingested asv result file)."""

    run_id: str
    started_at: str  # ISO 8601, UTC
    git_commit: str | None
    git_branch: str | None
    machine: str
    device: str  # "cpu" or "cuda"
    gpu_name: str | None
    cpu_name: str | None
    num_threads: int | None
    python_version: str
    torch_version: str | None
    triton_version: str | None
    cuda_version: str | None
    effbench_version: str
    grid: str
    source: str  # "effbench" or "asv"
    command: str
    ended_at: str | None = None  # ISO 8601, UTC; the store fills it from the shard's RunDone
    peers: str | None = None  # JSON {package: version} of the published implementations installed
    driver_version: str | None = None  # the NVIDIA driver's, on a GPU run
    gpu_clocks: str | None = None  # JSON: the GPU's SM and memory clocks (current and max, MHz) at the start


@dataclass(frozen=True)
class Result:
    """One number (or one failure) of one case: task x method x impl x point x dtype x device x seed."""

    run_id: str
    family: str
    task: str
    method: str
    impl: str
    point_key: str
    point: str  # the grid point as canonical JSON
    dtype: str
    device: str
    seed: int
    metric: str
    value: float | None
    unit: str
    status: str
    message: str
    measure_method: str  # how the number was produced, e.g. "cuda_events+l2_flush"
    code_hash: str  # hash of the method/task sources that produced it
    node: str | None = None  # host name of the machine that ran the case (format 5 on; a Ray run has several)
    node_hardware: str | None = None  # its model of the case's device: the GPU's name, or the CPU's (format 5 on)


@dataclass(frozen=True)
class Sample:
    """One raw timing sample behind a ``time_ms`` result."""

    run_id: str
    task: str
    method: str
    impl: str
    point_key: str
    dtype: str
    device: str
    seed: int
    metric: str
    idx: int
    value: float


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation point of a workload's training curve."""

    run_id: str
    task: str
    method: str
    impl: str
    point_key: str
    dtype: str
    device: str
    seed: int
    step: int
    wall_s: float
    train_loss: float | None
    eval_loss: float | None
    eval_metric: float | None


@dataclass(frozen=True)
class MethodInfo:
    """Catalog entry, carried in shards so the presentation layer never imports the registry."""

    family: str
    task: str
    method: str
    impls: str  # comma-separated impl names
    paper: str | None
    arxiv: str | None
    summary: str


@dataclass(frozen=True)
class TaskInfo:
    """A task as the analysis needs it without the registry (shards of format 4 on): which method and impl
    every other one is compared with, on which metrics, and where its targets come from."""

    family: str
    task: str
    kind: str  # "kernel" or "workload"
    baseline: str | None
    baseline_impl: str | None
    compare: str  # JSON list of [metric, higher_is_better]
    target: str  # the targets' provenance: a fixed constant and how it was set, or none
    description: str | None = None  # what the task measures, and what a reader must know to read it
    sizes: str | None = None  # JSON list of the point parameters whose product is the problem size
    metrics: str | None = None  # JSON {metric: [unit, better, scope, about]}: the task's declarations


@dataclass(frozen=True)
class ShardHeader:
    """First line of a shard (format 2 on): its format, and the plan it runs so that it can be resumed."""

    format: int
    run_id: str
    plan: str  # fingerprint of the configuration, the cases, the plugins and the git commit
    cases: int  # how many cases the plan has


@dataclass(frozen=True)
class CaseDone:
    """Closes one case's rows: how many lines and their sha256, so a cut or altered shard is refused."""

    run_id: str
    case: str  # case_key() of the case
    status: str
    rows: int
    sha256: str
    wall_s: float | None = None  # the case's wall time in the runner, worker start included (format 3 on)
    finished_at: str | None = None  # ISO 8601, UTC (format 3 on)


@dataclass(frozen=True)
class RunDone:
    """Closes the run (its cross-seed rows): a shard without it is of a run that did not finish."""

    run_id: str
    cases: int
    rows: int
    sha256: str
    ended_at: str | None = None  # ISO 8601, UTC (format 3 on)


@dataclass(frozen=True)
class TuningTrial:
    """One setting tried while tuning a workload case on a tuning seed (never a scored seed), outside
    every scored case's time and memory. ``score``: steps to the target (None: missed); the best score
    wins, ties and misses by the higher final metric."""

    run_id: str
    task: str
    method: str
    impl: str
    point_key: str
    dtype: str
    device: str
    seed: int  # a tuning seed (``workloads.TUNING_SEED``), disjoint from the scored seeds
    param: str  # e.g. "lr"
    value: float
    score: float | None
    final_metric: float | None
    chosen: bool
    note: str


@dataclass(frozen=True)
class TuningDone:
    """Closes one tuning job's trials (format 4 on): what it chose, for every scored seed of its group.

    ``group`` is ``tuning_key()``: the case but for its seed. ``values`` is JSON: the tuned values the
    scored cases are given (keyed by the workload's memo keys)."""

    run_id: str
    group: str
    status: str
    message: str
    values: str
    rows: int
    sha256: str
    wall_s: float | None = None


@dataclass(frozen=True)
class CaseTime:
    """How long one case took in the runner (the store's ``cases`` table; estimates of later runs read it)."""

    run_id: str
    task: str
    method: str
    impl: str
    point_key: str
    dtype: str
    device: str
    seed: int
    status: str
    wall_s: float | None
    finished_at: str | None


# How a kernel build ends: compiled and fits, the compiler refused it, or it needs more shared memory than the
# arch gives one block (it compiles, but the launch would fail).
BUILD_STATUSES = ("ok", "error", "overflow", "over_budget")


@dataclass(frozen=True)
class KernelBuild:
    """One Triton kernel compiled for one GPU arch at one launch configuration (``effbench kernels``).

    Not part of run shards: the store keeps the newest build of each (kernel, config, arch, triton_version).
    """

    kernel: str  # 'module.function', e.g. 'block_sparse_attention._fwd_kernel'
    config: str  # canonical, e.g. 'dtype=bfloat16 BLOCK=64 D=64 PRECISION=tf32 num_warps=4 num_stages=2'
    arch: str  # 'sm_80', 'sm_90'
    triton_version: str
    status: str  # one of BUILD_STATUSES
    registers: int | None  # per thread
    spills: int | None  # bytes of local memory per thread (ptxas's stack frame, where spilled registers go)
    spill_stores: int | None  # bytes of spill stores ptxas reports (None when its log was not captured)
    spill_loads: int | None
    shared_bytes: int | None  # per block: Triton's dynamic allocation plus any static shared array in the PTX
    shared_limit: int  # the arch's per-block maximum (opt-in), bytes
    compile_s: float | None
    message: str  # the compiler's message on error, the overflow or the spill budget, or ptxas's performance notes
    methods: str  # comma-separated 'task:method' of the methods whose Triton implementations launch it
    code_hash: str  # Triton's cache key of the kernel's source and the helpers it calls
    git_commit: str | None
    built_at: str  # ISO 8601, UTC


RECORD_TYPES: dict[str, type] = {
    "run": Run,
    "result": Result,
    "sample": Sample,
    "curve": CurvePoint,
    "method": MethodInfo,
    "task": TaskInfo,
    "shard": ShardHeader,
    "case_done": CaseDone,
    "run_done": RunDone,
    "tuning": TuningTrial,
    "tuning_done": TuningDone,
}
# 1: no header and no commit records (still read); 2: ShardHeader, CaseDone, RunDone;
# 3: CaseDone carries the case's wall time, RunDone the run's end; 4: tuning jobs (TuningTrial, TuningDone);
# 5: result rows name the node that ran their case (Result.node, Result.node_hardware); TaskInfo.metrics
SHARD_FORMAT = 5
TYPE_OF: dict[type, str] = {cls: name for name, cls in RECORD_TYPES.items()}


def _clean(value: Any) -> Any:
    # JSON has no NaN/Inf: a non-finite float is stored as null (its status says why).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json_line(record: Any) -> str:
    """Serialise a record to one JSON line with its ``type``."""
    data = {"type": TYPE_OF[type(record)]}
    data.update({k: _clean(v) for k, v in dataclasses.asdict(record).items()})
    return json.dumps(data, sort_keys=False, separators=(",", ":"))


def from_json_line(line: str) -> Any:
    """Parse one shard line back into its record; raises ValueError when malformed."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("type") not in RECORD_TYPES:
        raise ValueError("record without a known 'type'")
    cls = RECORD_TYPES[data.pop("type")]
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    # fields added later have defaults: records written before them still read
    optional = {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    if not set(fields) - optional <= set(data) <= set(fields):
        missing, extra = sorted(set(fields) - optional - set(data)), sorted(set(data) - set(fields))
        raise ValueError(f"{cls.__name__} record fields differ: missing {missing}, unexpected {extra}")
    for name, annotation in fields.items():
        if name in data and not _type_ok(data[name], str(annotation)):
            raise ValueError(f"{cls.__name__}.{name} should be {annotation}, got {type(data[name]).__name__}")
    for name in _TIMES.get(cls, ()):
        if data.get(name) is not None:
            try:
                datetime.fromisoformat(data[name])
            except ValueError:
                raise ValueError(f"{cls.__name__}.{name} is not an ISO 8601 time: {data[name][:40]!r}") from None
    return cls(**data)


_TIMES: dict[type, tuple[str, ...]] = {
    Run: ("started_at", "ended_at"), CaseDone: ("finished_at",), RunDone: ("ended_at",),
}
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (float, int), "bool": (bool,)}


def _type_ok(value: Any, annotation: str) -> bool:
    """Check a JSON value against a field annotation such as ``"float | None"``."""
    options = [part.strip() for part in annotation.split("|")]
    if value is None:
        return "None" in options
    if isinstance(value, bool):
        return "bool" in options
    if isinstance(value, int) and not -(1 << 63) <= value < 1 << 63:
        return False  # the store's integers are 64-bit
    return any(isinstance(value, _TYPES.get(option, ())) for option in options)


def point_key(point: dict[str, Any]) -> str:
    """Stable, human-readable key of a grid point: ``k=v`` pairs in sorted key order."""
    return ",".join(f"{k}={point[k]}" for k in sorted(point))


def point_json(point: dict[str, Any]) -> str:
    """Canonical JSON of a grid point."""
    return json.dumps(point, sort_keys=True, separators=(",", ":"))


def case_key(task: str, method: str, impl: str, point_key: str, dtype: str, device: str, seed: int) -> str:
    """One string naming a case: what CaseDone records and resume compares."""
    return "\x1f".join((task, method, impl, point_key, dtype, device, str(seed)))


def split_case_key(key: str) -> tuple[str, str, str, str, str, str, int]:
    """The inverse of ``case_key``."""
    task, method, impl, pkey, dtype, device, seed = key.split("\x1f")
    return task, method, impl, pkey, dtype, device, int(seed)


def row_case_key(row: Result | Sample | CurvePoint) -> str:
    return case_key(row.task, row.method, row.impl, row.point_key, row.dtype, row.device, row.seed)


def tuning_key(task: str, method: str, impl: str, point_key: str, dtype: str, device: str) -> str:
    """The group one tuning job serves: every scored seed of (task, method, impl, point, dtype, device)."""
    return "\x1f".join((task, method, impl, point_key, dtype, device))
