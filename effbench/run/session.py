"""A run end to end: its cases in the worker, each outcome as rows in the run's shard.

``run_cases`` runs a plan (fresh or resumed from an unfinished shard): tuning jobs before their first
scored seed, cases one at a time in the worker, each finished case appended to
``<shard_dir>/<run_id>.jsonl`` and fsynced before the next starts, failures recorded like results.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effbench import workloads
from effbench.errors import Interrupted
from effbench.metrics import resolve
from effbench.registry import (
    Registry,
    UsageError,
)
from effbench.rows import (
    SHARD_FORMAT,
    STATUSES,
    CurvePoint,
    Result,
    Run,
    Sample,
    ShardHeader,
    TuningDone,
    TuningTrial,
    point_json,
    tuning_key,
)
from effbench.run.case import CaseResult, TuningResult, _TruthCache, execute, execute_tuning, needs_tuning
from effbench.run.plan import Case, RunConfig
from effbench.run.provenance import method_infos, new_run, plan_fingerprint, task_infos
from effbench.run.shards import Shard, ShardContents, ShardError, find_resumable, read_shard, shard_path
from effbench.run.worker import Worker, WorkerError
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
    registry: Registry, run: Run, case: Case, result: CaseResult
) -> list[Result | Sample | CurvePoint]:
    """Rows of one case. A failed case gets one row per metric its task declares, valued NULL."""
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


# --------------------------------------------------------------------------- a whole run, for any front end


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


class SessionError(RuntimeError):
    """The run could not go on (its worker would not start); ``saved`` says what of it was kept."""

    def __init__(self, message: str, saved: str) -> None:
        super().__init__(f"{message}; {saved}")
        self.saved = saved


@dataclass
class Outcome:
    """How ``run`` ended: finished (``summary``), already finished before (``summary`` None), or stopped by a
    signal (``interrupted``: its number; ``saved`` says what of the run was kept)."""

    run: Run
    shard: Path
    summary: RunSummary | None = None
    added: int | None = None  # rows ``store`` added (None without a store)
    interrupted: int | None = None
    saved: str = ""


def run(
    registry: Registry,
    config: RunConfig,
    cases: Sequence[Case],
    shard_dir: Path,
    command: str = "",
    resume: bool = False,
    store: Callable[[Path], int] | None = None,
    say: Callable[[str], None] = lambda text: None,
    progress: Callable[[int, int], Any] | None = None,
    on_case: Callable[[Case, CaseResult], None] | None = None,
    source: str = "effbench",
) -> Outcome:
    """Run ``cases`` to the end, the one entry point of the CLI, the asv suites and any executor.

    ``resume``: continue the unfinished run of the same plan (its fingerprint) in ``shard_dir`` rather than
    start a new one; without it an unfinished one is only mentioned. ``store(shard) -> rows added`` puts the
    shard in a DB (at the end, or what finished when a signal stops the run). ``progress(total, done_before)``
    makes a context manager with ``start``/``finish``/``drop`` (``progress.RunProgress``). SIGTERM and Ctrl-C
    end the worker, keep every finished case, and return with ``interrupted`` set; a worker that will not
    start raises ``SessionError``; a busy shard raises ``UsageError``; ``store``'s own errors propagate.
    """
    fingerprint = plan_fingerprint(config, cases, registry.plugins)
    try:
        earlier = find_resumable(shard_dir, fingerprint)
    except UsageError:
        if resume:
            raise
        earlier = None  # a fresh run does not need the earlier shard
    resume_from = None
    if earlier is not None and resume:
        path, contents = earlier
        if contents.complete:
            added = store(path) if store else None  # idempotent: makes sure the finished run is stored
            say(f"nothing to resume: run {contents.run.run_id} finished all its cases ({len(contents.done)}; "
                f"{path}" + (f"; {added} rows added" if added is not None else "") + ")")
            return Outcome(contents.run, path, added=added)
        resume_from = contents
        say(f"resuming run {contents.run.run_id}: {len(contents.done)} of {len(cases)} cases done")
    elif earlier is not None and not earlier[1].complete:
        say(f"note: run {earlier[1].run.run_id} of this same command stopped after {len(earlier[1].done)} of "
            f"{len(cases)} cases; --resume would finish it")
    run_info = resume_from.run if resume_from else new_run(config, command, source=source)
    shard = shard_path(shard_dir, run_info)
    done_before = len(resume_from.done) if resume_from else 0
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        with progress(len(cases), done_before) if progress else contextlib.nullcontext() as bar:
            def finished(case: Case, result: CaseResult) -> None:
                if bar is not None:
                    bar.finish(case, result)
                if on_case is not None:
                    on_case(case, result)

            summary = run_cases(registry, cases, config, shard_dir, on_case=finished,
                                on_start=bar.start if bar is not None else None,
                                on_drop=bar.drop if bar is not None else None, run=run_info, resume=resume_from)
        return Outcome(run_info, summary.shard, summary, added=store(summary.shard) if store else None)
    except (WorkerError, KeyboardInterrupt, Interrupted) as exc:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the saving short
        saved = _save_finished(shard, store)
        if isinstance(exc, WorkerError):
            raise SessionError(str(exc), saved) from None
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        return Outcome(run_info, shard, interrupted=signum, saved=saved)
    finally:
        signal.signal(signal.SIGTERM, previous_term)


def _save_finished(shard: Path, store: Callable[[Path], int] | None) -> str:
    """Put an interrupted run's finished cases in the store; says what was saved."""
    if not shard.exists():
        return "no case had finished; nothing to save"
    try:
        finished = len(read_shard(shard).done)
    except ShardError as exc:
        return f"the shard {shard} is unreadable ({exc})"
    if not finished:
        return "no case had finished; nothing to save"
    if store is None:
        return f"{finished} finished cases are in {shard}"
    try:
        store(shard)
    except Exception as exc:  # noqa: BLE001 - whatever the store raises, the shard keeps every result
        return f"{finished} finished cases are in {shard} ({exc})"
    return f"{finished} finished cases saved"
