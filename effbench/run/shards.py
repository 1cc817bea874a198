"""Run shards: the append-only JSONL file of one run, written case by case and verified on reading.

``Shard`` writes: each case's rows in one write closed by a ``CaseDone`` (count and sha256), a tuning job's
trials closed by a ``TuningDone``, the run closed by a ``RunDone``; flushed and fsynced each time, under an
exclusive lock. ``read_shard`` trusts only rows a commit record closes, so a writer killed mid-case leaves
nothing half-counted, and ``find_resumable`` finds the run an interrupted command resumes. Stdlib and
``effbench.rows`` only (the store reads shards without torch).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from effbench.errors import UsageError
from effbench.rows import (
    SHARD_FORMAT,
    CaseDone,
    CaseTime,
    MethodInfo,
    Run,
    RunDone,
    ShardHeader,
    TaskInfo,
    TuningDone,
    TuningTrial,
    from_json_line,
    row_case_key,
    split_case_key,
    to_json_line,
    tuning_key,
)

if TYPE_CHECKING:  # annotations only: the case modules import torch
    from effbench.run.case import TuningResult
    from effbench.run.plan import Case


def shard_path(shard_dir: Path, run: Run) -> Path:
    return shard_dir / f"{run.run_id}.jsonl"


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


def lines_digest(lines: list[str]) -> str:
    """sha256 of the lines as written (each followed by a newline)."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


class ShardError(ValueError):
    """A shard that is malformed, cut short inside a record, altered or of a newer format."""


@dataclass
class ShardContents:
    """What a shard holds that can be trusted: only rows closed by a CaseDone or RunDone."""

    header: ShardHeader | None  # None: a format-1 shard
    run: Run | None
    records: list[Any]  # runs, methods and the rows of finished cases (and of the run's close)
    done: dict[str, CaseDone]  # case key -> its commit record
    complete: bool  # the run wrote its RunDone
    good_bytes: int  # the byte length of the shard up to the last trusted line: resume cuts there
    warnings: list[str]
    ended_at: str | None = None  # from the RunDone (format 3 on)
    tuning: dict[str, TuningDone] = dataclasses.field(default_factory=dict)  # tuning_key -> its job (format 4)

    def case_times(self) -> list[CaseTime]:
        """Each finished case's wall time (None in shards before format 3)."""
        return [CaseTime(done.run_id, *split_case_key(key), done.status, done.wall_s, done.finished_at)
                for key, done in self.done.items()]


def read_shard(path: str | Path) -> ShardContents:
    """Parse and verify a shard. Raises ShardError for anything a killed writer cannot explain."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ShardError(f"cannot read shard {path}: {exc.strerror or exc}") from None
    chunks = data.split(b"\n")
    contents = ShardContents(None, None, [], {}, False, 0, [])
    pending: list[tuple[Any, str]] = []  # rows not yet closed by a commit record
    offset = 0
    for number, chunk in enumerate(chunks, start=1):
        last = number == len(chunks)  # no newline after it
        end = offset + len(chunk) + (0 if last else 1)
        try:
            line = chunk.decode("utf-8")
        except UnicodeDecodeError:
            line = None
        if line is not None and not line.strip():
            offset = end
            if not pending:
                contents.good_bytes = end
            continue
        try:
            if line is None:
                raise ValueError("not UTF-8 text")
            record = from_json_line(line)
        except (ValueError, TypeError) as exc:
            if last:  # the writer died mid-line
                contents.warnings.append(f"{path}:{number}: skipped a truncated last line")
                break
            raise ShardError(f"{path}:{number}: malformed shard line: {exc}") from None
        where = f"{path}:{number}"
        if number == 1 and isinstance(record, ShardHeader):
            if record.format > SHARD_FORMAT:
                raise ShardError(f"{where}: shard format {record.format} is newer than this effbench's "
                                 f"{SHARD_FORMAT}: upgrade effbench")
            contents.header = record
        elif isinstance(record, ShardHeader):
            raise ShardError(f"{where}: a shard header that is not on the first line (concatenated shards?)")
        elif isinstance(record, Run):
            if contents.run is not None and contents.run != record:
                raise ShardError(f"{where}: a second, different run record")
            contents.run = record
            contents.records.append(record)
        elif isinstance(record, MethodInfo | TaskInfo):
            contents.records.append(record)
        elif contents.header is None:
            if isinstance(record, CaseDone | RunDone | TuningDone):
                raise ShardError(f"{where}: a commit record in a shard without a header")
            contents.records.append(record)  # format 1: every row as written
        elif contents.complete:
            raise ShardError(f"{where}: records after the run's end")
        elif isinstance(record, CaseDone | RunDone | TuningDone):
            _close(record, pending, contents, where)
            contents.records.extend(r for r, _ in pending)
            pending = []
        else:
            if contents.run is not None and record.run_id != contents.run.run_id:
                raise ShardError(f"{where}: a row of run {record.run_id!r} in the shard of {contents.run.run_id!r}")
            pending.append((record, line))
        offset = end
        if not pending:
            contents.good_bytes = end
    if contents.run is None:
        raise ShardError(f"{path}: not an effbench shard (no run record)")
    if contents.header is not None and contents.header.run_id != contents.run.run_id:
        raise ShardError(f"{path}: header of run {contents.header.run_id!r}, run record {contents.run.run_id!r}")
    if pending:
        cases = {row_case_key(r) for r, _ in pending if not isinstance(r, TuningTrial)}
        contents.warnings.append(f"{path}: dropped {len(pending)} rows of {len(cases)} unfinished case(s): "
                                 "the run was stopped while writing")
    return contents


def _close(record: CaseDone | RunDone | TuningDone, pending: list[tuple[Any, str]], contents: ShardContents,
           where: str) -> None:
    """Check a commit record against the rows it closes."""
    run_id = contents.header.run_id if contents.header else ""
    if record.run_id != run_id:
        raise ShardError(f"{where}: a commit record of run {record.run_id!r} in the shard of {run_id!r}")
    if record.rows != len(pending) or record.sha256 != lines_digest([line for _, line in pending]):
        raise ShardError(f"{where}: corrupted shard: the {len(pending)} rows before this commit record do not "
                         f"match its count ({record.rows}) and checksum")
    if isinstance(record, RunDone):
        if record.cases != len(contents.done):
            raise ShardError(f"{where}: the run's end counts {record.cases} cases, the shard {len(contents.done)}")
        contents.complete = True
        contents.ended_at = record.ended_at
        return
    if isinstance(record, TuningDone):
        if record.group in contents.tuning:
            raise ShardError(f"{where}: tuning of {record.group.replace(chr(31), ' ')!r} appears twice")
        if any(not isinstance(r, TuningTrial) or tuning_key(r.task, r.method, r.impl, r.point_key, r.dtype, r.device)
               != record.group for r, _ in pending):
            raise ShardError(f"{where}: rows of something else inside the tuning of "
                             f"{record.group.replace(chr(31), ' ')!r}")
        try:
            json.loads(record.values)
        except ValueError:
            raise ShardError(f"{where}: tuned values that are not JSON") from None
        contents.tuning[record.group] = record
        return
    try:
        split_case_key(record.case)
    except ValueError:
        raise ShardError(f"{where}: a commit record with a malformed case key") from None
    if record.case in contents.done:
        raise ShardError(f"{where}: case {record.case.replace(chr(31), ' ')!r} appears twice")
    if any(isinstance(r, TuningTrial) or row_case_key(r) != record.case for r, _ in pending):
        raise ShardError(f"{where}: rows of another case inside case {record.case.replace(chr(31), ' ')!r}")
    contents.done[record.case] = record
