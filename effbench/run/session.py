"""A run end to end: its cases in the worker, each outcome as rows in the run's shard.

``run_cases`` runs a plan (fresh or resumed from an unfinished shard): tuning jobs before their first
scored seed, cases one at a time in the worker, each finished case appended to
``<shard_dir>/<run_id>.jsonl`` and fsynced before the next starts, failures recorded like results.
Who runs the cases is an ``Executor``'s choice (this machine, ``LocalExecutor``; a Ray cluster,
``run.ray_executor``); the ``Ledger`` keeps the rest in one place: the shard, resume, counts, callbacks.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
from effbench.run.provenance import Node, method_infos, new_run, plan_fingerprint, task_infos, this_node
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


class CaseRunner:
    """Runs cases on this machine one at a time, each in the worker process (crash, hang and OOM isolation):
    the local executor's whole run, and a Ray task's group of cases on its node (``run.ray_executor``).

    A case whose impl cannot run here (a peer missing, no such device) is recorded without a worker. A case
    that needs a tuning job gets its group's job first, run once: ``tunings`` holds the jobs already done
    (by tuning key; a resumed run's among them), and each new one goes to ``on_tuning(case, result, wall_s)``
    before the case runs. ``in_process=True`` runs cases in this process (no isolation): tests and debugging.
    """

    def __init__(
        self,
        registry: Registry,
        config: RunConfig,
        in_process: bool = False,
        tunings: dict[str, TuningResult] | None = None,
        on_tuning: Callable[[Case, TuningResult, float], None] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.in_process = in_process
        self.tunings = {} if tunings is None else tunings
        self.on_tuning = on_tuning
        self.worker: Worker | None = None
        self.cache = _TruthCache()
        self._node: Node | None = None

    @property
    def node(self) -> Node:
        """This machine, as the rows of the cases it runs name it."""
        if self._node is None:
            self._node = this_node(self.config.device)
        return self._node

    def _worker(self) -> Worker:
        if self.worker is None or not self.worker.alive():
            self.worker = Worker(self.registry.plugins)
        return self.worker

    def _blocked(self, case: Case) -> tuple[str, str] | None:
        return self.registry.methods[(case.task, case.method)].impls[case.impl].why_not(case.device, case.dtype)

    def tune(self, case: Case) -> TuningResult | None:
        """The tuning job of the case's group (None when the case needs none): run once, before its first
        scored seed; a job ``tunings`` holds is not run again."""
        if self._blocked(case) or not needs_tuning(self.registry, case):
            return None
        group = tuning_key(case.task, case.method, case.impl, case.point_key, case.dtype, case.device)
        if group not in self.tunings:
            started = time.perf_counter()
            if self.in_process:
                result = execute_tuning(self.registry, case)
            else:
                # every lr of the grid, and a prior run per lr for a schedule built from one: a hang guard
                budget = self.config.timeout_s * 2 * (len(workloads.learning_rates(case.point)) + 1)
                result = self._worker().tune(case, self.config, budget)
            if self.on_tuning is not None:
                self.on_tuning(case, result, round(time.perf_counter() - started, 4))
            self.tunings[group] = result
        return self.tunings[group]

    def run(self, case: Case) -> tuple[CaseResult, float]:
        """The case's result and its wall time in seconds (its group's tuning job excluded)."""
        blocked = self._blocked(case)
        tuning = None if blocked else self.tune(case)
        started = time.perf_counter()  # after its group's tuning job: a case's time is its own
        if blocked:  # no need to start a process to learn that a package is missing
            result = CaseResult(status=blocked[0], message=blocked[1])
        elif tuning is not None and tuning.status != "ok":
            failed = tuning.status not in ("skipped", "unavailable")
            result = CaseResult(status=tuning.status,
                                message=f"tuning failed: {tuning.message}" if failed else tuning.message)
        elif self.in_process:
            result = execute(self.registry, case, self.config, self.cache, None if tuning is None else tuning.values)
        else:
            result = self._worker().run(case, self.config, None if tuning is None else tuning.values)
        return _known_status(result), round(time.perf_counter() - started, 4)

    def kill(self) -> None:
        """End the worker now (the case in flight, if any, is lost)."""
        if self.worker is not None:
            self.worker.kill()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


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


class Executor(Protocol):
    """How a run's cases are executed: on this machine (``LocalExecutor``) or on a cluster
    (``run.ray_executor.RayExecutor``). ``execute`` runs every case ``ledger.admit`` lets through and
    reports each to the ledger as it finishes; an exception (an interrupt) ends what is in flight and
    propagates, every case finished before it being in the shard."""

    def execute(self, registry: Registry, config: RunConfig, cases: Sequence[Case], ledger: Ledger) -> None: ...


@dataclass
class LocalExecutor:
    """The cases one after another in plan order, in one worker process on this machine (``CaseRunner``)."""

    in_process: bool = False

    def execute(self, registry: Registry, config: RunConfig, cases: Sequence[Case], ledger: Ledger) -> None:
        runner = CaseRunner(registry, config, self.in_process, ledger.tunings, ledger.tuned)
        try:
            for case in cases:
                if not ledger.admit(case):
                    continue
                ledger.start(case)
                result, wall_s = runner.run(case)
                ledger.finish(case, result, wall_s, runner.node)
        except BaseException:
            runner.kill()  # interrupted: the case in flight is lost, everything before it is in the shard
            raise
        else:
            runner.close()


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
    executor: Executor | None = None,
    on_node: Callable[[Case, Node], None] | None = None,
) -> RunSummary:
    """Run ``cases``, writing each outcome to the run's shard (``shard_path(shard_dir, run)``) as it finishes.

    ``resume``: the contents of an unfinished shard of the same plan (``find_resumable``); the run
    goes on in that shard under its run id, and the cases it finished are not run again.
    ``on_start(case)`` is called as a case starts, ``on_case(case, result)`` once it is in the shard
    (``on_node(case, node)`` just before, with the node that ran it),
    ``on_drop(case)`` for a planned case that does not run because an earlier point of the grid covered
    its method (``config.points == "first_covered"``).
    ``executor``: what runs the cases (default ``LocalExecutor(in_process)``); whichever it is, this
    process writes the shard. An exception (an interrupt) ends the worker and propagates; every case
    finished before it is in the shard.
    ``in_process=True`` (local executor) runs cases in this process (no isolation from crashes or hangs):
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
    ledger = Ledger(registry, run, shard, config, resume, tunings, on_case, on_start, on_drop, on_node)
    try:
        (executor or LocalExecutor(in_process)).execute(registry, config, cases, ledger)
        shard.write_end([])
    finally:
        shard.close()
    resumed = len(resume.done) if resume is not None else 0
    return RunSummary(run, shard.path, ledger.counts, ledger.failures, resumed, ledger.dropped, ledger.by_task)


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
    executor: Executor | None = None,
) -> Outcome:
    """Run ``cases`` to the end, the one entry point of the CLI, the asv suites and any executor.

    ``resume``: continue the unfinished run of the same plan (its fingerprint) in ``shard_dir`` rather than
    start a new one; without it an unfinished one is only mentioned. ``store(shard) -> rows added`` puts the
    shard in a DB (at the end, or what finished when a signal stops the run). ``progress(total, done_before)``
    makes a context manager with ``start``/``finish``/``drop`` (``progress.RunProgress``). SIGTERM and Ctrl-C
    end the worker, keep every finished case, and return with ``interrupted`` set; a worker that will not
    start raises ``SessionError``; a busy shard raises ``UsageError``; ``store``'s own errors propagate.
    ``executor``: what runs the cases (``run_cases``; default: this machine); resume, the shard, the store,
    signals and progress stay here whichever it is. The progress object may also have ``node(case, node)``,
    told which node ran each finished case.
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
                                on_drop=bar.drop if bar is not None else None, run=run_info, resume=resume_from,
                                executor=executor, on_node=getattr(bar, "node", None))
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
