"""The one schema between the runner and the store: plain, frozen records (stdlib only).

A run shard (``results/runs/<run_id>.jsonl``) is one JSON object per line, each with a
``type`` field naming one of the record classes below. The store ingests shards; the
runner writes them. Neither knows the other.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1

# Every case ends with exactly one of these.
STATUSES = ("ok", "error", "oom", "timeout", "unavailable", "skipped", "wrong")


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


RECORD_TYPES: dict[str, type] = {
    "run": Run,
    "result": Result,
    "sample": Sample,
    "curve": CurvePoint,
    "method": MethodInfo,
}
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
    if set(data) != set(fields):
        missing, extra = sorted(set(fields) - set(data)), sorted(set(data) - set(fields))
        raise ValueError(f"{cls.__name__} record fields differ: missing {missing}, unexpected {extra}")
    for name, annotation in fields.items():
        if not _type_ok(data[name], str(annotation)):
            raise ValueError(f"{cls.__name__}.{name} should be {annotation}, got {type(data[name]).__name__}")
    return cls(**data)


_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (float, int)}


def _type_ok(value: Any, annotation: str) -> bool:
    """Check a JSON value against a field annotation such as ``"float | None"``."""
    options = [part.strip() for part in annotation.split("|")]
    if value is None:
        return "None" in options
    if isinstance(value, bool):
        return False
    return any(isinstance(value, _TYPES.get(option, ())) for option in options)


def point_key(point: dict[str, Any]) -> str:
    """Stable, human-readable key of a grid point: ``k=v`` pairs in sorted key order."""
    return ",".join(f"{k}={point[k]}" for k in sorted(point))


def point_json(point: dict[str, Any]) -> str:
    """Canonical JSON of a grid point."""
    return json.dumps(point, sort_keys=True, separators=(",", ":"))
