"""A run end to end: its cases in the worker, each outcome as rows in the run's shard.

``run_cases`` runs a plan (fresh or resumed from an unfinished shard): tuning jobs before their first
scored seed, cases one at a time in the worker, each finished case appended to
``<shard_dir>/<run_id>.jsonl`` and fsynced before the next starts, failures recorded like results.
Who runs the cases is an ``Executor``'s choice (this machine, ``LocalExecutor``; a Ray cluster,
``run.ray_executor``); the ``Ledger`` keeps the rest in one place: the shard, resume, counts, callbacks.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from effbench.errors import Interrupted
from effbench.registry import (
    Registry,
    UsageError,
)
from effbench.rows import (
    SHARD_FORMAT,
    Run,
    ShardHeader,
)
from effbench.run.case import CaseResult
from effbench.run.executors import Executor, LocalExecutor
from effbench.run.ledger import Ledger, _tuning_from_record
from effbench.run.plan import Case, RunConfig
from effbench.run.provenance import Node, method_infos, new_run, plan_fingerprint, task_infos
from effbench.run.shards import Shard, ShardContents, ShardError, find_resumable, read_shard, shard_path
from effbench.run.worker import WorkerError


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
