"""The DuckDB store: schema, idempotent ingest of run shards and asv results, queries.

Knows the row schema (``rows``) and DuckDB; never imports torch or the runner. Every
ingest is all-or-nothing (one transaction) and adds nothing when repeated, because
every table has a primary key over what identifies a row.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import itertools
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from effbench.rows import SCHEMA_VERSION, CurvePoint, MethodInfo, Result, Run, Sample, from_json_line

DEFAULT_DB = Path("results/effbench.duckdb")
TABLES: dict[str, type] = {
    "runs": Run,
    "results": Result,
    "samples": Sample,
    "curves": CurvePoint,
    "methods": MethodInfo,
}


class StoreError(Exception):
    """A problem with a DB file or an input file: reported as one line."""


@dataclass
class IngestReport:
    path: str
    added: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.added.values())


def _polars_schema(cls: type) -> dict[str, Any]:
    schema = {}
    for f in dataclasses.fields(cls):
        base = f.type.split("|")[0].strip() if isinstance(f.type, str) else f.type
        schema[f.name] = {"int": pl.Int64, "float": pl.Float64, "str": pl.Utf8}.get(base, pl.Utf8)
    return schema


class Store:
    """A DuckDB results file. ``read_only`` for analysis and the site."""

    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise StoreError(f"no database at {self.path}: run `effbench run` or `effbench ingest` first")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"{self.path} cannot be opened as a DuckDB database: {first}") from None
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
        except BaseException:
            self.con.close()
            raise

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
        # Migrations go here as `if version < N: ...`; version 1 is the first schema.
        sql = resources.files("effbench").joinpath("schema.sql").read_text()
        for statement in sql.split(";"):
            if statement.strip():
                self._all(statement)
        self._all(
            "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [str(SCHEMA_VERSION)],
        )

    # ----------------------------------------------------------------- ingest

    def insert(self, records: list[Any]) -> dict[str, int]:
        """Insert records of the row types; existing keys are left alone. One transaction."""
        by_table: dict[str, list[Any]] = {name: [] for name in TABLES}
        table_of = {cls: name for name, cls in TABLES.items()}
        for record in records:
            by_table[table_of[type(record)]].append(record)
        added: dict[str, int] = {}
        # Rows travel through a temporary Parquet file: fast, and needs no pyarrow.
        with tempfile.TemporaryDirectory(prefix="effbench-ingest-") as tmp:
            files = {}
            for table, rows in by_table.items():
                if rows:
                    schema = _polars_schema(TABLES[table])
                    frame = pl.DataFrame([dataclasses.astuple(r) for r in rows], schema=schema, orient="row")
                    files[table] = (Path(tmp) / f"{table}.parquet", list(schema))
                    frame.write_parquet(files[table][0])
            self._all("BEGIN TRANSACTION")
            try:
                for table, (file, names) in files.items():
                    columns = ", ".join(names)
                    before = self._all(f"SELECT count(*) FROM {table}")[0][0]
                    # methods: the newest description wins; everything else: the first write wins.
                    conflict = "OR REPLACE" if table == "methods" else "OR IGNORE"
                    self._all(
                        f"INSERT {conflict} INTO {table} ({columns}) "
                        f"SELECT DISTINCT {columns} FROM read_parquet(?)",
                        [str(file)],
                    )
                    added[table] = self._all(f"SELECT count(*) FROM {table}")[0][0] - before
                self._all("COMMIT")
            except BaseException:
                self._all("ROLLBACK")
                raise
        return added

    def ingest_shard(self, path: str | Path) -> IngestReport:
        """Ingest one run shard (JSONL). A truncated last line (a killed run) is skipped with a warning."""
        path = Path(path)
        report = IngestReport(str(path))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read shard {path}: {exc}") from None
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(from_json_line(line))
            except (ValueError, TypeError) as exc:
                if number == len(lines):  # no newline after it: the writer died mid-line
                    report.warnings.append(f"{path}:{number}: skipped a truncated last line")
                    continue
                raise StoreError(f"{path}:{number}: malformed shard line: {exc}") from None
        if not any(isinstance(r, Run) for r in records):
            raise StoreError(f"{path}: not an effbench shard (no run record)")
        report.added = self.insert(records)
        return report

    def ingest_asv(self, path: str | Path) -> list[IngestReport]:
        """Ingest an asv results directory (or one result file) as runs with source 'asv'."""
        path = Path(path)
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*.json") if p.name not in ("machine.json", "benchmarks.json")
        )
        reports = []
        for file in files:
            records = asv_records(file)
            report = IngestReport(str(file))
            report.added = self.insert(records)
            reports.append(report)
        return reports

    def ingest(self, path: str | Path) -> list[IngestReport]:
        """Ingest a shard, an asv result file, or a directory holding either kind."""
        path = Path(path)
        if not path.exists():
            raise StoreError(f"no such file or directory: {path}")
        if path.is_file():
            if path.suffix == ".jsonl":
                return [self.ingest_shard(path)]
            if path.suffix == ".json":
                return self.ingest_asv(path)
            raise StoreError(f"{path}: expected a run shard (.jsonl) or an asv result file (.json)")
        reports = [self.ingest_shard(p) for p in sorted(path.rglob("*.jsonl"))]
        if any(p.name == "benchmarks.json" for p in path.rglob("benchmarks.json")):
            reports += self.ingest_asv(path)
        if not reports:
            raise StoreError(f"{path}: no run shards (*.jsonl) or asv results found")
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


# --------------------------------------------------------------------------- asv results

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def suite_task(module: str, class_name: str) -> str:
    """``('loss', 'LinearCrossEntropy')`` -> ``'loss/linear_cross_entropy'`` (inverse of asv_suites)."""
    return f"{module}/{_CAMEL.sub('_', class_name).lower()}"


def _find_benchmarks_json(file: Path) -> Path:
    for parent in file.parents:
        candidate = parent / "benchmarks.json"
        if candidate.is_file():
            return candidate
    raise StoreError(f"{file}: no benchmarks.json above it; is this an asv results directory?")


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)  # asv stores params as Python reprs; literal_eval never runs code
    except (ValueError, SyntaxError):
        return text


def asv_records(file: Path) -> list[Any]:
    """Runs and results from one asv result file (asv >= 0.6, format version 2)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        benchmarks = json.loads(_find_benchmarks_json(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{file}: not a readable asv result file: {exc}") from None
    try:
        columns = data["result_columns"]
        results = data["results"]
        commit = data["commit_hash"]
        env_name = data.get("env_name", "")
        date_ms = data["date"]
        machine = data.get("params", {})
    except (KeyError, TypeError) as exc:
        raise StoreError(f"{file}: not an asv result file (missing {exc})") from None
    if not isinstance(results, dict):
        raise StoreError(f"{file}: 'results' is not a mapping")
    run_id = "asv-" + hashlib.sha256(
        json.dumps([machine.get("machine"), commit, env_name, date_ms]).encode()
    ).hexdigest()[:16]
    started = datetime.fromtimestamp(date_ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")
    records: list[Any] = []
    devices: set[str] = set()
    grids: set[str] = set()
    for name, entry in results.items():
        parts = name.split(".")
        if len(parts) != 3 or not parts[2].startswith("track_"):
            continue  # not an effbench suite benchmark
        family, class_name, bench = parts
        metric = bench.removeprefix("track_")
        task = suite_task(family, class_name)
        row = dict(zip(columns, entry, strict=False))
        values = row.get("result")
        params = row.get("params") or []
        meta = benchmarks.get(name, {})
        unit = meta.get("unit", "")
        if values is None:
            continue
        if not isinstance(values, list):
            values = [values]
        combos = list(itertools.product(*[[_literal(p) for p in ps] for ps in params]))
        if len(combos) != len(values):
            raise StoreError(f"{file}: {name}: {len(values)} values for {len(combos)} parameter combinations")
        for combo, value in zip(combos, values, strict=True):
            if len(combo) != 5:
                raise StoreError(f"{file}: {name}: expected params (case, point, dtype, device, grid)")
            case, pkey, dtype, device, grid = combo
            method, _, impl = str(case).partition(":")
            devices.add(str(device))
            grids.add(str(grid))
            if value is None:
                status, message, stored = "error", "asv recorded a failure (its log has the message)", None
            elif isinstance(value, float) and math.isnan(value):
                status, message, stored = "skipped", "asv skipped this combination", None
            else:
                status, message, stored = "ok", "", float(value)
            records.append(
                Result(
                    run_id=run_id, family=family, task=task, method=method, impl=impl,
                    point_key=str(pkey), point="", dtype=str(dtype), device=str(device), seed=0,
                    metric=metric, value=stored, unit=unit, status=status, message=message,
                    measure_method="asv track_ (effbench measure)", code_hash=str(row.get("version", "")),
                )
            )
    records.insert(
        0,
        Run(
            run_id=run_id, started_at=started, git_commit=commit, git_branch=None,
            machine=str(machine.get("machine", "")), device=",".join(sorted(devices)) or "unknown",
            gpu_name=machine.get("gpu"), cpu_name=machine.get("cpu"), num_threads=None,
            python_version=str(data.get("python", machine.get("python", ""))),
            torch_version=machine.get("torch"), triton_version=machine.get("triton"),
            cuda_version=machine.get("cuda"), effbench_version="", grid=",".join(sorted(grids)) or "unknown",
            source="asv", command=f"asv run ({env_name})",
        ),
    )
    return records
