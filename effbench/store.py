"""The DuckDB store: schema, idempotent ingest of run shards and asv results, queries.

Knows the row schema (``rows``) and DuckDB; never imports torch or the runner. Every
ingest is all-or-nothing (one transaction) and adds nothing when repeated, because
every table has a primary key over what identifies a row.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from effbench.asv_results import AsvResultError, asv_records
from effbench.errors import first_line
from effbench.rows import (
    SCHEMA_VERSION,
    CaseTime,
    CurvePoint,
    KernelBuild,
    MethodInfo,
    Result,
    Run,
    Sample,
    TaskInfo,
    TuningTrial,
)
from effbench.run.shards import ShardError, read_shard

DEFAULT_DB = Path("results/effbench.duckdb")
# DuckDB lets one process write a file (and no one read it meanwhile): others wait this long for it.
LOCK_WAIT_S = 600.0
TABLES: dict[str, type] = {
    "runs": Run,
    "results": Result,
    "samples": Sample,
    "curves": CurvePoint,
    "methods": MethodInfo,
    "cases": CaseTime,
    "tuning": TuningTrial,
    "tasks": TaskInfo,
    "kernel_builds": KernelBuild,
}


class StoreError(Exception):
    """A problem with a DB file or an input file: reported as one line."""


@dataclass
class IngestReport:
    path: str
    added: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    frames: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False)  # what is to be inserted

    @property
    def total(self) -> int:
        return sum(self.added.values())


def _polars_schema(cls: type) -> dict[str, Any]:
    schema = {}
    for f in dataclasses.fields(cls):
        base = f.type.split("|")[0].strip() if isinstance(f.type, str) else f.type
        schema[f.name] = {"int": pl.Int64, "float": pl.Float64, "str": pl.Utf8, "bool": pl.Boolean}.get(base, pl.Utf8)
    return schema


class Store:
    """A DuckDB results file. ``read_only`` for analysis and the site."""

    def __init__(
        self,
        path: str | Path = DEFAULT_DB,
        read_only: bool = False,
        wait_s: float = LOCK_WAIT_S,
        on_wait: Callable[[str], None] | None = None,
        older_ok: bool = False,
    ) -> None:
        """Open (or create) the DB; while another process holds it, wait up to ``wait_s`` seconds,
        telling ``on_wait`` once why. A writable open upgrades an older schema in place; a read-only one
        refuses it unless ``older_ok`` (reading raw tables, as ingest of another DB does)."""
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise StoreError(f"no database at {self.path}: run `effbench run` or `effbench ingest` first")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = self._connect(read_only, wait_s, on_wait)
        try:
            version = self.schema_version()
            if version is not None and version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this effbench's {SCHEMA_VERSION}: "
                    "upgrade effbench"
                )
            if not read_only:
                self._apply_schema(version)
            elif version is None:
                raise StoreError(f"{self.path} is not an effbench database (no schema version)")
            elif version < SCHEMA_VERSION and not older_ok:  # its views and tables predate what analysis reads
                raise StoreError(
                    f"{self.path} has schema version {version}, older than this effbench's {SCHEMA_VERSION}: "
                    "open it for writing once to upgrade it in place, nothing is lost (e.g. `effbench ingest "
                    f"results/runs --db {self.path}`, or `python -c \"from effbench.store import Store; "
                    f"Store('{self.path}').close()\"`)"
                )
        except duckdb.Error as exc:
            self.con.close()
            raise StoreError(f"{self.path} is not a usable effbench database: {first_line(exc)}") from None
        except BaseException:
            self.con.close()
            raise

    def _connect(self, read_only: bool, wait_s: float, on_wait: Callable[[str], None] | None):
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                first = first_line(exc)
                held = "lock" in first.lower()
                holder = re.search(r"PID (\d+)", first)
                who = f"another process (PID {holder.group(1)})" if holder else "another process"
                if not held:
                    raise StoreError(f"{self.path} cannot be opened as a DuckDB database: {first}") from None
                if time.monotonic() >= deadline:
                    raise StoreError(f"{self.path} is held by {who} for more than {wait_s:g} s; "
                                     "try again when it finishes") from None
                if not told and on_wait is not None:
                    on_wait(f"waiting for {self.path}: {who} is using it")
                    told = True
                time.sleep(0.2)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def schema_version(self) -> int | None:
        has_meta = self._all("SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'")[0][0]
        if not has_meta:
            return None
        rows = self._all("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows else None

    def _all(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        # Always fetch everything: newer duckdb refuses new work while a result is unfinished.
        cursor = self.con.execute(sql, params or [])
        return cursor.fetchall() if cursor is not None else []  # duckdb 2 returns None for DDL

    def _apply_schema(self, version: int | None) -> None:
        # Migrations of older files first, then schema.sql (CREATE ... IF NOT EXISTS) adds what is new.
        if version is not None and version < 2:
            self._all("ALTER TABLE runs ADD COLUMN IF NOT EXISTS ended_at TIMESTAMP")
        if version is not None and version < 4:  # before schema.sql: its views read them
            self._all("ALTER TABLE results ADD COLUMN IF NOT EXISTS node VARCHAR")
            self._all("ALTER TABLE results ADD COLUMN IF NOT EXISTS node_hardware VARCHAR")
        sql = resources.files("effbench").joinpath("schema.sql").read_text()
        for statement in sql.split(";"):
            if statement.strip():
                self._all(statement)
        # columns added within schema 3 (files written by its first commits lack them)
        self._all("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS description VARCHAR")
        self._all("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS sizes VARCHAR")
        self._all("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS metrics VARCHAR")
        for column in ("peers", "driver_version", "gpu_clocks"):
            self._all(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {column} VARCHAR")
        self._all(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [str(SCHEMA_VERSION)],
        )

    # ----------------------------------------------------------------- ingest

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._all("BEGIN TRANSACTION")
        try:
            yield
            self._all("COMMIT")
        except BaseException:
            self._all("ROLLBACK")
            raise

    def tasks_without_metrics(self) -> list[str]:
        """Tasks whose rows came from shards written before tasks declared their metrics."""
        return [r[0] for r in self._all("SELECT task FROM tasks WHERE metrics IS NULL ORDER BY task")]

    def fill_task_metrics(self, declared: dict[str, str]) -> None:
        """Set the metric declarations (``effbench.metrics.to_json``) of tasks that have none; never overwrite."""
        for task, table in declared.items():
            self._all("UPDATE tasks SET metrics = ? WHERE task = ? AND metrics IS NULL", [table, task])

    def tasks_without_rows(self) -> list[str]:
        """Tasks with results but no ``tasks`` row (shards written before kernel tasks had one)."""
        return [r[0] for r in self._all("SELECT DISTINCT task FROM results WHERE task NOT IN (SELECT task FROM tasks) "
                                        "ORDER BY task")]

    def tasks_without_sizes(self) -> list[str]:
        """Tasks whose row predates the declared size parameters."""
        return [r[0] for r in self._all("SELECT task FROM tasks WHERE sizes IS NULL ORDER BY task")]

    def fill_task_sizes(self, declared: dict[str, str]) -> None:
        """Set the size parameters (a JSON list) of tasks that have none; never overwrite."""
        for task, sizes in declared.items():
            self._all("UPDATE tasks SET sizes = ? WHERE task = ? AND sizes IS NULL", [sizes, task])

    def insert(self, records: list[Any]) -> dict[str, int]:
        """Insert records of the row types; existing keys are left alone. One transaction."""
        with self._transaction():
            return self._insert_frames(record_frames(records))

    def _insert_frames(self, frames: dict[str, pl.DataFrame]) -> dict[str, int]:
        """Insert tables' rows (inside a transaction); returns how many rows each table gained."""
        added: dict[str, int] = {}
        # Rows travel through a temporary Parquet file: fast, and needs no pyarrow.
        with tempfile.TemporaryDirectory(prefix="effbench-ingest-") as tmp:
            for table, frame in frames.items():
                if frame.is_empty():
                    continue
                names = [f.name for f in dataclasses.fields(TABLES[table])]
                file = Path(tmp) / f"{table}.parquet"
                frame.select(names).write_parquet(file)
                columns = ", ".join(names)
                before = self._all(f"SELECT count(*) FROM {table}")[0][0]
                # methods: the newest description wins; a run's end fills in once it is known (a resumed
                # run's shard is ingested when interrupted, then again when finished); everything else:
                # the first write wins.
                conflict, update = "OR IGNORE", ""
                if table in ("methods", "tasks"):
                    conflict = "OR REPLACE"
                elif table == "runs":
                    conflict = ""
                    update = (" ON CONFLICT (run_id) DO UPDATE SET "
                              "ended_at = coalesce(runs.ended_at, CAST(excluded.ended_at AS TIMESTAMP))")
                elif table == "kernel_builds":  # the newest build of a key wins, whatever the order of sources
                    conflict = ""
                    kept = [n for n in names if n not in ("kernel", "config", "arch", "triton_version")]
                    update = (" ON CONFLICT (kernel, config, arch, triton_version) DO UPDATE SET "
                              + ", ".join(f"{n} = CAST(excluded.{n} AS TIMESTAMP)" if n == "built_at"
                                          else f"{n} = excluded.{n}" for n in kept)
                              + " WHERE CAST(excluded.built_at AS TIMESTAMP) >= kernel_builds.built_at")
                self._all(
                    f"INSERT {conflict} INTO {table} ({columns}) SELECT DISTINCT {columns} FROM read_parquet(?)"
                    + update,
                    [str(file)],
                )
                added[table] = self._all(f"SELECT count(*) FROM {table}")[0][0] - before
        return added

    def ingest_shard(self, path: str | Path) -> IngestReport:
        """Ingest one run shard (JSONL): only rows its commit records vouch for (see ``rows.read_shard``)."""
        return self.ingest_all([path])[0]

    def ingest_all(self, paths: Sequence[str | Path]) -> list[IngestReport]:
        """Ingest shards, asv results, DuckDB files and directories of them, all or nothing: every source
        is read and checked before the first row is written, and the rows go in in one transaction."""
        return self._ingest_reports([report for path in paths for report in self.collect(path)])

    def collect(self, path: str | Path) -> list[IngestReport]:
        """Read and check one source (not yet written): its reports carry the frames to insert."""
        path = Path(path)
        if not path.exists():
            raise StoreError(f"no such file or directory: {path}")
        if path.is_file():
            if path.suffix == ".jsonl":
                return [self._collect_shard(path)]
            if path.suffix == ".json":
                return self._collect_asv(path)
            if path.suffix in (".duckdb", ".db"):
                return [self._collect_db(path)]
            raise StoreError(f"{path}: expected a run shard (.jsonl), an asv result file (.json) or a DuckDB "
                             "file (.duckdb)")
        shards = [self._collect_shard(p) for p in sorted(path.rglob("*.jsonl"))]
        reports = shards + [self._collect_db(p) for p in sorted(path.rglob("*.duckdb"))]
        if any(path.rglob("benchmarks.json")):
            reports += self._collect_asv(path, detailed=_asv_detailed(shards))
        if not reports:
            raise StoreError(f"{path}: no run shards (*.jsonl), DuckDB files or asv results found")
        return reports

    def _collect_shard(self, path: Path) -> IngestReport:
        try:
            contents = read_shard(path)
        except ShardError as exc:
            raise StoreError(f"{exc}; nothing was ingested") from None
        report = IngestReport(str(path), warnings=list(contents.warnings))
        if contents.header is not None and not contents.complete:
            report.warnings.append(f"{path}: run {contents.run.run_id} did not finish: {len(contents.done)} of "
                                   f"{contents.header.cases} cases (`effbench run --resume` finishes it)")
        records = list(contents.records)
        if contents.ended_at is not None:
            records = [dataclasses.replace(r, ended_at=contents.ended_at) if isinstance(r, Run) else r
                       for r in records]
        report.frames = _frames(records + contents.case_times(), path)
        return report

    def _collect_asv(self, path: Path, detailed: set[tuple[str, str]] = frozenset()) -> list[IngestReport]:
        """asv result files; ``detailed``: (commit, task) of the asv suites' shards ingested with them, whose
        asv summary rows are left out (the shard holds the same cases in full)."""
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*.json") if p.name not in ("machine.json", "benchmarks.json")
        )
        try:
            return [IngestReport(str(file), frames=_frames(asv_records(file, detailed), file)) for file in files]
        except AsvResultError as exc:
            raise StoreError(str(exc)) from None

    def _collect_db(self, path: Path) -> IngestReport:
        """Every table of another effbench DB (one of an older or equal schema)."""
        if path.resolve() == self.path.resolve():
            raise StoreError(f"{path} is the destination DB itself")
        with Store(path, read_only=True, older_ok=True) as source:
            frames = {}
            for table, cls in TABLES.items():  # an older schema may lack a table or a column: NULLs
                have = {row[0] for row in source._all(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])}
                if have:
                    columns = ", ".join(f.name if f.name in have else f"NULL AS {f.name}"
                                        for f in dataclasses.fields(cls))
                    frames[table] = source.query(f"SELECT {columns} FROM {table}")
        return IngestReport(str(path), frames={t: f for t, f in frames.items() if not f.is_empty()})

    def ingest_asv(self, path: str | Path) -> list[IngestReport]:
        """Ingest an asv results directory (or one result file) as runs with source 'asv'."""
        return self._ingest_reports(self._collect_asv(Path(path)))

    def ingest(self, path: str | Path) -> list[IngestReport]:
        """Ingest a shard, an asv result file, a DuckDB file, or a directory holding any of them."""
        return self.ingest_all([path])

    def _ingest_reports(self, reports: list[IngestReport]) -> list[IngestReport]:
        current = ""
        try:
            with self._transaction():
                for report in reports:
                    current = report.path
                    report.added = self._insert_frames(report.frames)
                    report.frames = {}
        except duckdb.Error as exc:  # a value the schema refuses: the transaction is rolled back
            raise StoreError(f"{current}: cannot be stored: {first_line(exc)}; nothing was ingested") from None
        return reports

    # ----------------------------------------------------------------- queries

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Run SQL (values only through ``params``) and return a polars DataFrame."""
        try:
            cursor = self.con.execute(sql, params or [])
            names = [d[0] for d in cursor.description] if cursor is not None and cursor.description else []
            rows = cursor.fetchall() if names else []
        except duckdb.Error as exc:
            raise StoreError(f"query failed: {str(exc).splitlines()[0]}") from None
        if not names:
            return pl.DataFrame()
        columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        return pl.DataFrame(columns, strict=False)


def _frames(records: Sequence[Any], source: Path) -> dict[str, pl.DataFrame]:
    try:
        return record_frames(records)
    except (pl.exceptions.PolarsError, OverflowError, TypeError, ValueError) as exc:
        raise StoreError(f"{source}: values of the wrong type ({first_line(exc)[:200]})") from None


def record_frames(records: Sequence[Any]) -> dict[str, pl.DataFrame]:
    """Records of the row types as one DataFrame per table (commit records are not stored)."""
    by_table: dict[str, list[Any]] = {name: [] for name in TABLES}
    table_of = {cls: name for name, cls in TABLES.items()}
    for record in records:
        table = table_of.get(type(record))
        if table is not None:
            by_table[table].append(record)
    return {
        table: pl.DataFrame([dataclasses.astuple(r) for r in rows], schema=_polars_schema(TABLES[table]), orient="row")
        for table, rows in by_table.items() if rows
    }


def _asv_detailed(shards: Sequence[IngestReport]) -> set[tuple[str, str]]:
    """(commit, task) of every shard an asv suite wrote (source asv) among ``shards``."""
    detailed = set()
    for report in shards:
        runs, tasks = report.frames.get("runs"), report.frames.get("tasks")
        if runs is None or tasks is None:
            continue
        for source, commit in zip(runs["source"].to_list(), runs["git_commit"].to_list(), strict=True):
            if source == "asv" and commit:
                detailed.update((commit, task) for task in tasks["task"].to_list())
    return detailed
