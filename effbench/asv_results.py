"""asv's side of effbench: the suites' class names and the parsing of asv result files (stdlib and rows only).

``class_name`` names a task's asv suite and ``suite_task`` reads it back: the one definition of the convention
(the suites in ``asv_suites`` and the store's ingest both use it). ``asv_records`` turns one asv result file
(asv >= 0.6, format version 2) into runs and results, trusting nothing in it: a field of the wrong type is a
malformed file (``AsvResultError``), and parameters are read with ``ast.literal_eval``, never run.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from effbench.errors import first_line
from effbench.rows import Result, Run


class AsvResultError(ValueError):
    """An asv result file that cannot be read or does not hold what asv writes."""


def class_name(task_key: str) -> str:
    """``'loss/linear_cross_entropy'`` -> ``'LinearCrossEntropy'`` (``suite_task`` inverts it)."""
    return "".join(part.capitalize() for part in task_key.split("/", 1)[1].split("_"))


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def suite_task(module: str, class_name: str) -> str:
    """``('loss', 'LinearCrossEntropy')`` -> ``'loss/linear_cross_entropy'`` (the inverse of ``class_name``)."""
    return f"{module}/{_CAMEL.sub('_', class_name).lower()}"


def _find_benchmarks_json(file: Path) -> Path:
    for parent in file.parents:
        candidate = parent / "benchmarks.json"
        if candidate.is_file():
            return candidate
    raise AsvResultError(f"{file}: no benchmarks.json above it; is this an asv results directory?")


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)  # asv stores params as Python reprs; literal_eval never runs code
    except (ValueError, SyntaxError):
        return text


def asv_records(file: Path, detailed: set[tuple[str, str]] = frozenset()) -> list[Any]:
    """Runs and results from one asv result file (asv >= 0.6, format version 2), less the tasks whose
    (commit, task) is in ``detailed``: an asv suite's shard of that commit holds them in full."""
    try:
        return _asv_records(file, detailed)
    except (TypeError, ValueError, AttributeError, OverflowError, KeyError) as exc:
        # asv's JSON is trusted for nothing: a field of the wrong type is a malformed file
        raise AsvResultError(f"{file}: not a valid asv result file ({type(exc).__name__}: "
                         f"{first_line(exc)[:200]})") from None


def _asv_records(file: Path, detailed: set[tuple[str, str]]) -> list[Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        benchmarks = json.loads(_find_benchmarks_json(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AsvResultError(f"{file}: not a readable asv result file: {exc}") from None
    try:
        columns = data["result_columns"]
        results = data["results"]
        commit = data["commit_hash"]
        env_name = data.get("env_name", "")
        date_ms = data["date"]
        machine = data.get("params", {})
    except (KeyError, TypeError) as exc:
        raise AsvResultError(f"{file}: not an asv result file (missing {exc})") from None
    if not isinstance(results, dict):
        raise AsvResultError(f"{file}: 'results' is not a mapping")
    run_id = "asv-" + hashlib.sha256(
        json.dumps([machine.get("machine"), commit, env_name, date_ms]).encode()
    ).hexdigest()[:16]
    started = datetime.fromtimestamp(date_ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")
    records: list[Any] = []
    devices: set[str] = set()
    grids: set[str] = set()
    summarised_elsewhere = False
    for name, entry in results.items():
        parts = name.split(".")
        if len(parts) != 3 or not parts[2].startswith("track_"):
            continue  # not an effbench suite benchmark
        family, class_name, bench = parts
        metric = bench.removeprefix("track_")
        task = suite_task(family, class_name)
        if (commit, task) in detailed:
            summarised_elsewhere = True
            continue
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
            raise AsvResultError(f"{file}: {name}: {len(values)} values for {len(combos)} parameter combinations")
        for combo, value in zip(combos, values, strict=True):
            if len(combo) != 5:
                raise AsvResultError(f"{file}: {name}: expected params (case, point, dtype, device, grid)")
            case, pkey, dtype, device, grid = combo
            method, _, impl = str(case).partition(":")
            devices.add(str(device))
            grids.add(str(grid))
            if value is None:
                status, message, stored = "error", "asv recorded a failure (its log has the message)", None
            elif isinstance(value, float) and math.isnan(value):
                # asv's skip: not run here (another shard's case, or one effbench's run records as
                # skipped with its reason). A row for it would shadow another shard's result.
                continue
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
    if summarised_elsewhere and not records:
        return []  # every task of the file is in its suites' shards: no run of its own
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
