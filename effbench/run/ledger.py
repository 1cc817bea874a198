"""The driver's books of a run: each case's rows, and the ``Ledger`` that writes them to the run's shard (the one
writer), decides which planned cases still run (resume, points already covered) and counts the outcomes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from effbench.metrics import resolve
from effbench.registry import (
    Registry,
)
from effbench.rows import (
    STATUSES,
    CurvePoint,
    Result,
    Run,
    Sample,
    TuningDone,
    TuningTrial,
    point_json,
    tuning_key,
)
from effbench.run.case import CaseResult, TuningResult
from effbench.run.plan import Case, RunConfig
from effbench.run.provenance import Node
from effbench.run.shards import Shard, ShardContents
from effbench.tasks import KernelTask


def _unit(task: Any, metric: str) -> str:
    """The metric's declared unit ("" for one the task does not declare: the registry refuses such tasks, but
    a derived() may still emit a stray name, and its row is kept rather than lost)."""
    found = resolve(metric, task.metric_table)
    return found.unit if found is not None else ""


def _known_status(result: CaseResult) -> CaseResult:
    if result.status in STATUSES:
        return result
    return CaseResult(status="error", message=f"unknown status {result.status!r}: {result.message}")


def result_rows(
    registry: Registry, run: Run, case: Case, result: CaseResult, node: Node | None = None
) -> list[Result | Sample | CurvePoint]:
    """Rows of one case (``node``: the machine that ran it). A failed case gets one row per metric its task
    declares, valued NULL."""
    task = registry.tasks[case.task]
    method = registry.methods[(case.task, case.method)]
    result = _known_status(result)
    if result.status in ("ok", "wrong"):
        metrics = dict(result.metrics)
    else:
        # Kernel tasks time and measure memory on seed 0 only (metrics declared "seed0"); later seeds check
        # accuracy.
        later_seed = isinstance(task, KernelTask) and case.seed > 0
        metrics = {m: None for m in task.metrics if not (later_seed and task.metric(m).scope == "seed0")}
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
                value=None if value is None else float(value), unit=_unit(task, metric),
                status=result.status, message=message,
                measure_method=result.measure_methods.get(metric, ""), code_hash=code_hash,
                node=node.host if node else None, node_hardware=node.hardware if node else None, **common,
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


class Ledger:
    """The driver's side of a run, whatever executes its cases: which planned cases still run, and each
    outcome written to the run's shard (the one writer: appended and fsynced as the case finishes), counted
    and reported to the callbacks. Executors call ``admit``, then ``start``, ``tuned`` and ``finish``."""

    def __init__(
        self,
        registry: Registry,
        run: Run,
        shard: Shard,
        config: RunConfig,
        resume: ShardContents | None,
        tunings: dict[str, TuningResult],
        on_case: Callable[[Case, CaseResult], None] | None = None,
        on_start: Callable[[Case], None] | None = None,
        on_drop: Callable[[Case], None] | None = None,
        on_node: Callable[[Case, Node], None] | None = None,
    ) -> None:
        self.registry, self.run, self.shard, self.resume = registry, run, shard, resume
        self.tunings = tunings  # tuning key -> the job's result (done in this run or the resumed part)
        self.on_case, self.on_start, self.on_drop, self.on_node = on_case, on_start, on_drop, on_node
        self.first_covered = config.points == "first_covered"
        self.covered: set[tuple[str, ...]] = set()  # lineages that ran at an earlier point
        self.counts = dict.fromkeys(STATUSES, 0)
        self.failures: list[tuple[Case, CaseResult]] = []
        self.by_task: dict[str, dict[str, int]] = {}
        self.dropped = 0
        self.pending: set[str] = set()  # keys of admitted cases not yet finished

    def _count(self, case: Case, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        tally = self.by_task.setdefault(case.task, {})
        tally[status] = tally.get(status, 0) + 1
        if self.first_covered and status != "skipped":
            self.covered.add(case.lineage)

    def admit(self, case: Case) -> bool:
        """Whether ``case`` is to run. Not when an earlier point of the grid covered its method (dropped,
        ``GRID_POINTS``), nor when the resumed run finished it (counted). With ``first_covered`` points,
        An executor that runs cases out of plan order admits a case only once every earlier case of its
        lineage (the same case at an earlier point) has finished, so that ``covered`` is complete."""
        if case.lineage in self.covered:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop(case)
            return False
        if self.resume is not None and case.key in self.resume.done:
            self._count(case, self.resume.done[case.key].status)
            return False
        self.pending.add(case.key)
        return True

    def start(self, case: Case) -> None:
        if self.on_start is not None:
            self.on_start(case)

    def tuned(self, case: Case, result: TuningResult, wall_s: float) -> None:
        """A tuning job finished: into the shard with every trial, before the cases it serves."""
        self.shard.write_tuning(case, result, tuning_rows(self.run, case, result), wall_s)
        self.tunings[tuning_key(case.task, case.method, case.impl, case.point_key, case.dtype, case.device)] = result

    def finish(self, case: Case, result: CaseResult, wall_s: float | None, node: Node | None) -> None:
        """A case finished (``node``: where it ran, None when unknown): its rows into the shard, fsynced."""
        if case.key not in self.pending:
            raise RuntimeError(f"case {case.label()} was not admitted, or finished twice")
        result = _known_status(result)
        self.shard.write_case(case, result.status, result_rows(self.registry, self.run, case, result, node),
                              wall_s=wall_s)
        self.pending.discard(case.key)
        self._count(case, result.status)
        if result.status not in ("ok", "skipped", "unavailable"):
            self.failures.append((case, result))
        if self.on_node is not None and node is not None:
            self.on_node(case, node)
        if self.on_case is not None:
            self.on_case(case, result)
