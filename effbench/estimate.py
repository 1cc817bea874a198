"""How long a planned run will take, before it starts.

Each planned case gets the wall time the same case took in earlier runs (the store's ``cases``
table, written from every run's shard), else that of its nearest measured relative (the same
method and impl at another seed, then any case of the task at that point, then any case of the
task on that device), else its task's declared cost per case (``Task.cost_s``, measured on the
development machine and written beside the grid), else nothing: unknown. Knows the store and
plain case keys only (no torch, no runner).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from effbench.store import Store, StoreError

# (task, method, impl, point_key, dtype, device, seed)
CaseKey = tuple[str, str, str, str, str, str, int]
SOURCES = ("measured", "nearby", "declared", "unknown")


@dataclass
class TaskEstimate:
    task: str
    cases: int = 0  # cases expected to run
    planned: int = 0  # cases in the plan (more than ``cases`` where a grid stops at a first covered point)
    seconds: float = 0.0  # over the cases whose time is known
    sources: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))

    @property
    def complete(self) -> bool:
        return self.sources["unknown"] == 0

    def describe_sources(self) -> str:
        names = {"measured": "this case before", "nearby": "similar cases", "declared": "declared cost",
                 "unknown": "unknown"}
        return ", ".join(f"{names[s]} {n}" for s, n in self.sources.items() if n)


def _median(values: list[float]) -> float:
    return statistics.median(values)


class History:
    """Earlier case times from a DB (empty when there is no DB or it predates case times)."""

    def __init__(self, db: Path | None) -> None:
        self.exact: dict[CaseKey, float] = {}
        self.status: dict[CaseKey, str] = {}
        self.by_impl: dict[tuple[str, ...], float] = {}
        self.by_point: dict[tuple[str, ...], float] = {}
        self.by_task: dict[tuple[str, ...], float] = {}
        self.rows = 0
        if db is None or not Path(db).exists():
            return
        try:
            with Store(db, read_only=True, wait_s=0) as store:  # a DB in use: estimate without it
                has = store.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'cases'")
                if not has["n"][0]:
                    return
                frame = store.query(
                    "SELECT c.task, c.method, c.impl, c.point_key, c.dtype, c.device, c.seed, c.status, c.wall_s, "
                    "u.grid FROM cases c JOIN runs u USING (run_id) WHERE c.wall_s IS NOT NULL "
                    "ORDER BY u.started_at, c.run_id")
        except StoreError:
            return  # no usable DB: estimate from declared costs
        groups: dict[str, dict[tuple, list[float]]] = {"exact": {}, "impl": {}, "point": {}, "task": {}}
        for task, method, impl, pkey, dtype, device, seed, status, wall, grid in frame.iter_rows():
            key = (task, method, impl, pkey, dtype, device, seed)
            self.status[key] = status  # the newest run's status wins (ordered by start)
            groups["exact"].setdefault(key, []).append(wall)
            groups["impl"].setdefault((task, method, impl, pkey, dtype, device, seed == 0), []).append(wall)
            groups["point"].setdefault((task, pkey, dtype, device, seed == 0), []).append(wall)
            groups["task"].setdefault((task, device, grid), []).append(wall)  # a grid's points are its own
        self.rows = frame.height
        self.exact = {k: _median(v) for k, v in groups["exact"].items()}
        self.by_impl = {k: _median(v) for k, v in groups["impl"].items()}
        self.by_point = {k: _median(v) for k, v in groups["point"].items()}
        self.by_task = {k: _median(v) for k, v in groups["task"].items()}

    def seconds(self, key: CaseKey, grid: str, declared: float | None) -> tuple[float | None, str]:
        """The case's expected wall seconds on ``grid`` and where the number comes from (``SOURCES``)."""
        task, method, impl, pkey, dtype, device, seed = key
        if key in self.exact:
            return self.exact[key], "measured"
        for table, probe in ((self.by_impl, (task, method, impl, pkey, dtype, device, seed == 0)),
                             (self.by_point, (task, pkey, dtype, device, seed == 0)),
                             (self.by_task, (task, device, grid))):
            if probe in table:
                return table[probe], "nearby"
        if declared is not None:
            return declared, "declared"
        return None, "unknown"


def estimate(cases: Sequence[CaseKey], grid: str, declared: Mapping[str, float | None], history: History,
             first_covered: bool = False) -> dict[str, TaskEstimate]:
    """Per task: how many cases will run and how long they take (``declared[task]``: seconds per case).

    ``first_covered``: the grid runs each (method, impl, dtype, device, seed) at its first covered
    point; a lineage stops at the first point where it was not skipped before (or had no history).
    """
    out: dict[str, TaskEstimate] = {}
    stopped: set[tuple] = set()
    for key in cases:
        task, method, impl, _, dtype, device, seed = key
        entry = out.setdefault(task, TaskEstimate(task))
        entry.planned += 1
        lineage = (task, method, impl, dtype, device, seed)
        if lineage in stopped:
            continue
        if first_covered and history.status.get(key) != "skipped":
            stopped.add(lineage)
        seconds, source = history.seconds(key, grid, declared.get(task))
        entry.cases += 1
        entry.sources[source] += 1
        if seconds is not None:
            entry.seconds += seconds
    return out
