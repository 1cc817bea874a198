"""What a run left: ``effbench ingest``, ``merge``, ``report``, ``query``, ``compare`` and ``site``."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from effbench.cli.base import DB_OPTION, _fail, _num, cli


def _declare_old_tasks(store: Any) -> None:
    """Shards written before tasks declared their metrics and size parameters (and, for kernel tasks, before
    tasks had a row at all) carry no declarations: the installed tasks' fill in (a unit or direction changes
    only with a new metric name, and a task's size parameters are those of its grid, so today's declaration is
    the old one's). A row or value already stored is never overwritten; tasks no longer installed stay
    undeclared."""
    missing, metrics, sizes = store.tasks_without_rows(), store.tasks_without_metrics(), store.tasks_without_sizes()
    if not (missing or metrics or sizes):
        return
    from effbench.metrics import to_json
    from effbench.registry import discover
    from effbench.run.provenance import task_info

    registry = discover()
    tasks = registry.tasks
    if [key for key in missing if key in tasks]:
        store.insert([task_info(registry, key) for key in missing if key in tasks])
    store.fill_task_metrics({key: to_json(tasks[key].metric_table) for key in metrics if key in tasks})
    store.fill_task_sizes({key: json.dumps(list(tasks[key].sizes)) for key in sizes if key in tasks})


def _ingest_into(db: Path, paths: tuple[Path, ...]) -> list[Any]:
    """All sources read and checked first, then written in one transaction: a bad one changes nothing."""
    from effbench.store import Store, StoreError

    try:
        with Store(db, on_wait=lambda message: click.echo(message, err=True)) as store:
            reports = store.ingest_all(paths)
            _declare_old_tasks(store)
    except StoreError as exc:
        _fail(str(exc))
    for report in reports:
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
    return reports


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@DB_OPTION
def ingest(paths: tuple[Path, ...], db: Path) -> None:
    """Load run shards (*.jsonl), asv results (directories or *.json) and effbench DuckDB files into the DB.

    Idempotent: ingesting the same file twice adds nothing. All or nothing: a malformed,
    cut or altered source is refused, naming it, and nothing is written.

    \b
    Example:
        effbench ingest results/runs results/asv
    """
    for report in _ingest_into(db, paths):
        added = ", ".join(f"{t} +{n}" for t, n in report.added.items() if n) or "nothing new"
        click.echo(f"{report.path}: {added}")


@cli.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@DB_OPTION
def merge(sources: tuple[Path, ...], db: Path) -> None:
    """Combine DuckDB files and run shards from many machines into one DB.

    SOURCES are effbench DuckDB files, run shards (*.jsonl), asv result directories, or
    directories holding any of them. Idempotent (every row has a key: merging twice adds
    nothing) and all or nothing (every source is checked before anything is written).

    \b
    Example:
        effbench merge --db results/effbench.duckdb shard-1.duckdb shard-2.duckdb runs/
    """
    reports = _ingest_into(db, sources)
    totals: dict[str, int] = {}
    for report in reports:
        for table, n in report.added.items():
            totals[table] = totals.get(table, 0) + n
    added = ", ".join(f"{t} +{n}" for t, n in totals.items() if n) or "nothing new"
    click.echo(f"merged {len(reports)} source(s) into {db}: {added}")


@cli.command()
@click.argument("tasks", nargs=-1)
@DB_OPTION
@click.option("--format", "fmt", type=click.Choice(["markdown"]), default="markdown", show_default=True,
              help="Output format.")
@click.option("--check", "check_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Exit 1 when a generated block of this file differs from what the DB gives (0 when all match).")
@click.option("--write", "write_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Rewrite every generated block of this file from the DB.")
def report(tasks: tuple[str, ...], db: Path, fmt: str, check_file: Path | None, write_file: Path | None) -> None:
    """Findings tables from the DB: a workload task's verdicts, a kernel task's largest point.

    Without --check or --write, prints a block per task (TASKS: 'family/name' or its name; all by default).
    A document keeps tables between markers, so that its numbers cannot drift from their data:

    \b
        <!-- effbench report: workload optimizer/convergence -->
        <!-- effbench report: end -->

    (kinds: workload, matrix, kernel). --write fills them in; --check exits 1 and shows the difference
    when a block no longer matches the DB.

    \b
    Example:
        effbench ingest results/runs --db committed.duckdb
        effbench report --db committed.duckdb --check docs/findings.md
        effbench report optimizer/convergence --db committed.duckdb
    """
    import difflib

    from effbench.report import Report, ReportError
    from effbench.store import StoreError

    try:
        reporter = Report(db, _declared_sizes())
        if check_file is not None or write_file is not None:
            path = check_file or write_file
            text = path.read_text(encoding="utf-8")
            blocks = reporter.blocks(text)
            if not blocks:
                _fail(f"{path}: no '<!-- effbench report: KIND TASK -->' blocks")
            if write_file is not None:
                path.write_text(reporter.update(text), encoding="utf-8")
                click.echo(f"{path}: {len(blocks)} blocks written from {db}")
                return
            mismatches = reporter.check(text)
            for m in mismatches:
                click.echo(f"block '{m.spec}' differs from the DB:", err=True)
                click.echo("".join(difflib.unified_diff(m.stored.splitlines(keepends=True),
                                                        m.fresh.splitlines(keepends=True), "document", "db")),
                           err=True)
            if mismatches:
                sys.exit(1)
            click.echo(f"{path}: {len(blocks)} blocks match {db}")
            return
        known = sorted(set(reporter.frame["task"])) if not reporter.frame.is_empty() else []
        chosen = [_task_key(t, known) for t in tasks] or known
        kinds = ({r["task"]: r["kind"] for r in reporter.info.iter_rows(named=True)}
                 if not reporter.info.is_empty() else {})
        for task in chosen:
            kind = kinds.get(task) or ("kernel" if reporter.frame.filter(
                (reporter.frame["task"] == task) & (reporter.frame["metric"] == "time_ms")).height else "workload")
            spec = f"{kind} {task}"
            try:
                click.echo(f"{spec}\n\n{reporter.render(spec)}")
            except ReportError as exc:
                click.echo(f"{spec}: {exc}\n", err=True)
    except (ReportError, StoreError) as exc:
        _fail(str(exc))


def _task_key(name: str, known: list[str]) -> str:
    if name in known:
        return name
    matches = [k for k in known if k.split("/", 1)[1] == name]
    if len(matches) != 1:
        _fail(f"no results of task {name!r} in the DB; it has: {', '.join(known) or 'none'}")
    return matches[0]


def _declared_sizes() -> dict[str, list[str]]:
    """Each task's size parameters from the registry (for runs older than the tasks rows); {} without torch."""
    try:
        from effbench.registry import discover

        return {key: list(task.sizes) for key, task in discover().tasks.items() if task.sizes}
    except ImportError:
        return {}


@cli.command()
@click.argument("sql")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON list of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Print rows as CSV.")
def query(sql: str, db: Path, as_json: bool, as_csv: bool) -> None:
    """Run read-only SQL against the DB (tables: runs, results, samples, curves, methods, kernel_builds; view: latest).

    \b
    Example:
        effbench query "SELECT impl, avg(value) FROM latest WHERE metric = 'time_ms' GROUP BY impl"
        effbench query "SELECT * FROM runs" --json
    """
    from effbench.store import Store, StoreError

    if as_json and as_csv:
        _fail("choose one of --json and --csv")
    try:
        with Store(db, read_only=True) as store:
            frame = store.query(sql)
    except StoreError as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(frame.to_dicts(), indent=2, default=str))
    elif as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(frame.columns)
        writer.writerows(frame.iter_rows())
    else:
        from effbench.console import print_table

        print_table(frame.columns, list(frame.iter_rows()))


@cli.command()
@click.argument("base")
@click.argument("head")
@DB_OPTION
@click.option("--metric", "metrics", multiple=True, help="Metric to compare (repeatable)  [default: time_ms, "
              "peak_mem_bytes]")
@click.option("--threshold", type=float, default=1.10, show_default=True,
              help="Ratio head/base beyond which a change counts (either way).")
@click.option("--alpha", type=float, default=0.01, show_default=True,
              help="Significance level of the Mann-Whitney test on raw timing samples.")
@click.option("--all", "show_all", is_flag=True, help="List unchanged cases too.")
@click.option("--json", "as_json", is_flag=True, help="Print every compared row as JSON.")
@click.option("--judge-untimed", is_flag=True,
              help="Judge the numbers of smoke-grid runs too (they are checks, not timings: for testing the rule).")
@click.option("--across-hardware", is_flag=True,
              help="Compare runs made on different hardware (GPU or CPU model); refused otherwise, since the "
                   "ratios would measure the machines as much as the code.")
def compare(base: str, head: str, db: Path, metrics: tuple[str, ...], threshold: float, alpha: float,
            show_all: bool, as_json: bool, judge_untimed: bool, across_hardware: bool) -> None:
    """Compare two runs (run ids or git commits) case by case; exit 1 on a regression (a CI gate).

    A metric changed when head/base is beyond --threshold either way and beyond the noise
    (Mann-Whitney U on the raw timing samples at --alpha when both sides have 5 or more;
    the ratio alone otherwise). Lower is better for every compared metric. A case that was
    ok in BASE and is wrong, error, oom or timeout in HEAD is a regression. Runs of the
    smoke grid are checks, not timings: their numbers are never judged (verdict
    "untimed"), only statuses that turn bad. Cases are matched on the same hardware (GPU
    model for cuda, else CPU model, else machine); runs on different hardware are refused
    (exit 2) unless --across-hardware.

    \b
    Example:
        effbench compare 20261202T130818Z-da014d73 20261203T090000Z-0a1b2c3d
        effbench compare 123e40f HEAD_COMMIT --metric time_ms --threshold 1.05
    """
    import polars as pl

    from effbench.analysis import COMPARED, HardwareMismatch, changes
    from effbench.store import StoreError

    if not threshold > 1:  # NaN too
        _fail(f"--threshold must be above 1, got {threshold}")
    if not 0 < alpha < 1:
        _fail(f"--alpha must be between 0 and 1, got {alpha}")
    try:
        frame = changes(db, base, head, metrics or COMPARED, threshold=threshold, alpha=alpha,
                        judge_untimed=judge_untimed, across_hardware=across_hardware)
    except HardwareMismatch as exc:  # exit 2, a usage error: exit 1 is the CI gate's "regression"
        error = click.ClickException(" ".join(str(exc).split()))
        error.exit_code = 2
        raise error from None
    except KeyError as exc:
        _fail(str(exc.args[0]))
    except StoreError as exc:
        _fail(str(exc))
    if frame.is_empty():
        _fail(f"no case and metric is in both {base} and {head}")
    regressions = frame.filter(pl.col("verdict") == "regression").height
    improvements = frame.filter(pl.col("verdict") == "improvement").height
    if as_json:
        click.echo(json.dumps(frame.to_dicts(), indent=2, default=str))
    else:
        from effbench.console import print_table

        shown = frame if show_all else frame.filter(pl.col("verdict").is_in(["regression", "improvement"]))
        rows = [[r["verdict"], r["task"], f"{r['method']}/{r['impl']}", r["point_key"], r["dtype"], r["device"],
                 r["metric"], _num(r["base"]), _num(r["head"]), "" if r["ratio"] is None else f"{r['ratio']:.3f}x",
                 "" if r["p_value"] is None else f"{r['p_value']:.2g}"] for r in shown.iter_rows(named=True)]
        if rows:
            print_table(["verdict", "task", "method/impl", "point", "dtype", "device", "metric", "base", "head",
                         "ratio", "p"], rows)
        click.echo(f"{frame.height} compared: {regressions} regression(s), {improvements} improvement(s) "
                   f"(rule: ratio beyond {threshold:g}x and Mann-Whitney p < {alpha:g} where samples allow)")
        crossed = frame.filter(pl.col("hardware") != pl.col("base_hardware"))
        if not crossed.is_empty():
            pairs = sorted(set(crossed.select("base_hardware", "hardware").iter_rows()))
            click.echo("compared across hardware (the ratios measure the machines too): "
                       + "; ".join(f"base on {b}, head on {h}" for b, h in pairs))
        untimed = frame.filter(pl.col("verdict") == "untimed").height
        if untimed:
            click.echo(f"{untimed} compared row(s) come from a grid whose times are not for comparison (smoke: no "
                       "warm-up, a few repetitions): their numbers were not judged, only statuses that turned bad. "
                       "Compare runs of the cpu or gpu grid for timings.")
    if regressions:
        sys.exit(1)


@cli.command()
@DB_OPTION
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("site"), show_default=True,
              help="Output directory.")
def site(db: Path, out: Path) -> None:
    """Render the static comparison site from the DB alone (works offline).

    \b
    Example:
        effbench site --out site && python -m http.server -d site
    """
    from effbench.sitegen import build
    from effbench.store import StoreError

    try:
        index = build(db, out)
    except StoreError as exc:
        _fail(str(exc))
    click.echo(f"site written: {index}")
