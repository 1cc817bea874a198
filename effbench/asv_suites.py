"""asv suites generated from the registry: one class per task, ``track_*`` benchmarks only.

asv's ``time_*`` does not synchronise a GPU and its ``peakmem_*`` sees CPU RSS only, so
each suite runs its task's cases once through effbench's runner (``setup_cache``: in
worker processes, with effbench's timing, memory and error measurement) and its
``track_*`` benchmarks return those numbers. ``EFFBENCH_GRID`` picks the grid
(default ``smoke``). ``EFFBENCH_SHARD=i/N`` runs only shard i of N, split as
``effbench run --shard i/N`` splits; params stay the same on every shard (asv needs one
set of benchmark definitions everywhere) and the other shards' combinations skip.

asv's JSON keeps only the tracked numbers (one per case, seed 0 or a median), so every suite also
writes effbench's own shard, the full record (every metric, seed, sample, curve and failure
message), beside asv's results: ``<results_dir>/effbench/<run_id>.jsonl`` (or
``$EFFBENCH_ASV_SHARDS``). ``effbench ingest <results_dir>`` takes the shards and, for the tasks an
asv suite's shard of the same commit covers, leaves asv's summary of them out, so the DB gets what
``effbench run`` on the same cases would give.
Params: ``case`` ("method:impl"), ``point``, ``dtype``, ``device``, ``grid``. A failed
case raises in its track (asv records a failure, effbench's message is in asv's log); a
combination that did not run raises asv's ``SkipNotImplemented`` (skip).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import types
from pathlib import Path
from typing import Any

from asv_runner.benchmarks.mark import SkipNotImplemented  # a NotImplementedError: asv records a skip

from effbench.asv_results import class_name
from effbench.metrics import Metric
from effbench.registry import Registry, UsageError, discover
from effbench.rows import point_key
from effbench.run import session
from effbench.run.plan import Case, RunConfig, default_device, make_config, parse_shard, plan, shard_of
from effbench.tasks import KernelTask

SUITE_TIMEOUT_S = {"smoke": 1800, "cpu": 4 * 3600, "gpu": 8 * 3600}
TRACKED_KERNEL = ("time_ms", "peak_mem_bytes", "rel_error")
TRACKED_WORKLOAD = ("final_metric", "final_loss", "steps_to_target", "time_to_target_s", "peak_mem_bytes")


def asv_shard_dir(suite_file: str | None) -> Path:
    """Where a suite writes its effbench shard: ``$EFFBENCH_ASV_SHARDS``, else ``effbench/`` in the results
    directory of the ``asv.conf.json`` above the suite's file (asv runs a benchmark in a temporary
    directory and, with an existing environment, tells it neither its config nor its commit)."""
    explicit = os.environ.get("EFFBENCH_ASV_SHARDS", "").strip()
    if explicit:
        return Path(explicit)
    conf_dir = Path(suite_file).resolve().parent.parent if suite_file else Path.cwd()
    results = Path("results/asv")
    try:
        text = (conf_dir / "asv.conf.json").read_text(encoding="utf-8")
        # asv allows // comment lines in its config
        conf = json.loads("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//")))
        results = Path(conf.get("results_dir", results))
    except (OSError, ValueError, AttributeError):
        pass
    return (results if results.is_absolute() else conf_dir / results) / "effbench"


def shard_from_env() -> tuple[int, int] | None:
    """``EFFBENCH_SHARD=i/N`` -> (i, N), or None when unset. A bad value stops the import with one
    line (asv would otherwise show a traceback of its own discovery)."""
    spec = os.environ.get("EFFBENCH_SHARD", "").strip()
    if not spec:
        return None
    try:
        return parse_shard(spec)
    except UsageError as exc:
        raise SystemExit(f"EFFBENCH_SHARD: {exc}") from None


def suite_cases(registry: Registry, task_key: str, config: RunConfig, shard: tuple[int, int] | None) -> list[Case]:
    """The cases a suite's ``setup_cache`` runs: what ``effbench run --task T --shard i/N`` runs."""
    cases = plan(registry, config, task=task_key)
    return cases if shard is None else shard_of(registry, cases, *shard)


def _aggregate(task: Any, outcomes: list[tuple[Case, Any]]) -> dict[str, Any]:
    """One entry per (case, point, dtype): worst status over seeds, numbers per metric."""
    statuses = [r.status for _, r in outcomes]
    bad = [r for _, r in outcomes if r.status != "ok"]
    entry: dict[str, Any] = {
        "status": bad[0].status if bad else "ok",
        "message": bad[0].message if bad else "",
    }
    if isinstance(task, KernelTask):
        seed0 = next((r for c, r in outcomes if c.seed == 0), None)
        for metric in TRACKED_KERNEL:
            if task.metric(metric).scope == "seed0":  # measured once, on seed 0
                entry[metric] = seed0.metrics.get(metric) if seed0 else None
        errors = [r.metrics.get("rel_error") for _, r in outcomes if r.metrics.get("rel_error") is not None]
        entry["rel_error"] = max(errors) if errors else None
    else:
        for metric in TRACKED_WORKLOAD:
            values = [r.metrics.get(metric) for _, r in outcomes]
            present = [v for v in values if v is not None]
            # A target missed by any seed makes the median meaningless: report nothing then.
            entry[metric] = statistics.median(present) if present and len(present) == len(values) else None
    entry["seeds"] = len(statuses)
    return entry


def _track(metric: str, declared: Metric) -> Any:
    def track(self: Any, cache: dict, case: str, point: str, dtype: str, device: str, grid: str) -> float:
        entry = cache[(case, point, dtype, device)]
        if entry["status"] != "ok":
            raise RuntimeError(f"{entry['status']}: {entry['message']}")
        value = entry.get(metric)
        return math.nan if value is None else float(value)

    track.__name__ = f"track_{metric}"
    track.unit = declared.unit
    if declared.higher_is_better:
        track.higher_is_better = True
    return track


def make_suite(task_key: str) -> type:
    """The asv benchmark class for one task."""
    grid = os.environ.get("EFFBENCH_GRID", "smoke")
    shard = shard_from_env()
    not_run = "combination not run" + (f" (not in shard {shard[0]}/{shard[1]})" if shard else "") + (
        "; smoke runs each method at its first covered point" if grid == "smoke" else "")
    registry = discover()
    task = registry.task(task_key)
    device = default_device()
    methods = registry.methods_of(task_key)
    points = {point_key(p): p for p in task.grids[grid]}
    shard_dir = asv_shard_dir(sys._getframe(1).f_globals.get("__file__"))  # the benchmarks/<family>.py calling

    def setup_cache(self: Any) -> dict:
        config = make_config(grid, device)
        cases = suite_cases(registry, task_key, config, shard)
        outcomes: dict[tuple[str, str, str, str], list] = {}
        if not cases:  # all of this task's cases are on other shards
            return {}
        session.run(registry, config, cases, shard_dir, command=f"asv suite {task_key}", source="asv",
                    on_case=lambda c, r: outcomes.setdefault(
                        (f"{c.method}:{c.impl}", c.point_key, c.dtype, c.device), []).append((c, r)))
        return {key: _aggregate(task, value) for key, value in outcomes.items()}

    # asv keys setup_cache results by "module:line"; every suite's setup_cache is this same
    # function, so give each its own synthetic module or they would share one cache.
    module_name = f"effbench_asv.{class_name(task_key)}"
    sys.modules.setdefault(module_name, types.ModuleType(module_name))
    setup_cache.__module__ = module_name
    setup_cache.timeout = SUITE_TIMEOUT_S.get(grid, 3600)

    def setup(self: Any, cache: dict, case: str, point: str, dtype: str, device: str, grid: str) -> None:
        entry = cache.get((case, point, dtype, device))
        if entry is None:
            raise SkipNotImplemented(not_run)
        if entry["status"] in ("unavailable", "skipped"):
            raise SkipNotImplemented(entry["message"])  # asv records a skip (NaN), not a failure

    tracked = TRACKED_KERNEL if isinstance(task, KernelTask) else TRACKED_WORKLOAD
    attrs: dict[str, Any] = {
        "params": [
            [f"{m.name}:{impl}" for m in methods for impl in m.impls],
            list(points), list(task.dtypes[grid]), [device], [grid],
        ],
        "param_names": ["case", "point", "dtype", "device", "grid"],
        "timeout": SUITE_TIMEOUT_S.get(grid, 3600),
        "rounds": 1,
        "repeat": 1,
        "number": 1,
        # the import closure of the task, its methods and the harness: asv drops stale results when any changes
        "version": registry.suite_hash(task_key),
        "setup_cache": setup_cache,
        "setup": setup,
        "__doc__": f"effbench task {task_key} ({task.kind}), grid {grid}.",
    }
    for metric in tracked:
        attrs[f"track_{metric}"] = _track(metric, task.metric(metric))
    return type(class_name(task_key), (), attrs)
