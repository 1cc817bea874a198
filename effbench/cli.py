"""The ``effbench`` command: a thin shell over the registry, runner, store and site.

Heavy modules (torch, the runner, plotly) are imported inside the command that needs
them, so ``effbench query`` and ``effbench site`` start fast and work without torch.
"""

from __future__ import annotations

import csv
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

DB_OPTION = click.option(
    "--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/effbench.duckdb"),
    show_default=True, help="DuckDB results file.",
)
PLUGIN_OPTION = click.option(
    "--plugin", "plugins", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Python file defining your own Method objects (repeatable).",
)


def _fail(message: str) -> None:
    raise click.ClickException(" ".join(str(message).split()))


def _registry(plugins: tuple[Path, ...]):
    from effbench.registry import UsageError, discover

    try:
        return discover(plugins)
    except UsageError as exc:
        _fail(str(exc))


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as exc:  # a path that cannot be a file here: too long, under a file, unreadable
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="effbench")
def cli() -> None:
    """effbench: losses, optimizers, samplers and sparse attention, measured the same way.

    Runs every method's implementations on fixed grids, writes time, memory and
    accuracy to DuckDB, and renders a static comparison site.

    \b
    Example:
        effbench list --family loss
        effbench run --grid smoke
        effbench site && xdg-open site/index.html
    """


@cli.command("list")
@click.option("--family", help="Only this family (loss, optimizer, sampler, attention).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of {family, task, method, impls, paper, arxiv, kind}; kind is kernel, "
              "workload or schedule (the learning-rate schedules of optimizer/convergence).")
@PLUGIN_OPTION
def list_cmd(family: str | None, as_json: bool, plugins: tuple[Path, ...]) -> None:
    """List tasks, methods and their implementations.

    \b
    Example:
        effbench list --family attention --json
    """
    from effbench.registry import FAMILIES, suggest

    registry = _registry(plugins)
    if family is not None and family not in FAMILIES:
        _fail(str(suggest("family", family, FAMILIES)))
    entries = [
        {
            "family": m.family, "task": m.task, "method": m.name, "impls": list(m.impls),
            "paper": m.paper, "arxiv": m.arxiv, "kind": registry.tasks[m.task].kind,
        }
        for m in registry.methods.values()
        if family is None or m.family == family
    ]
    if family in (None, "optimizer"):
        from effbench.schedules import SCHEDULES

        # learning-rate schedules are an axis of the convergence workload, listed beside the update rules
        entries += [
            {"family": "optimizer", "task": "optimizer/convergence", "method": s.name, "impls": [],
             "paper": s.paper, "arxiv": s.arxiv, "kind": "schedule"}
            for s in SCHEDULES.values()
        ]
    entries.sort(key=lambda e: (e["family"], e["task"], e["kind"] == "schedule", e["method"]))
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("family", "task", "method", "impls", "paper")
    for e in entries:
        paper = f"{e['paper']} (arXiv:{e['arxiv']})" if e["arxiv"] else (e["paper"] or "")
        impls = "(schedule)" if e["kind"] == "schedule" else ", ".join(e["impls"])
        table.add_row(e["family"], e["task"], e["method"], impls, paper)
    Console().print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {datasets: [...], models: [...]}.")
def zoo(as_json: bool) -> None:
    """List the fixed datasets and models that workloads are built from.

    Every dataset is built here (no download) and shown with its content hash.

    \b
    Example:
        effbench zoo --json
    """
    from effbench.data import DATASETS
    from effbench.models import LM_SIZES, count_parameters
    from effbench.workloads import MODELS, build_model

    datasets = []
    for name, build in sorted(DATASETS.items()):
        data = build()
        datasets.append({
            "name": name, "kind": data.kind, "train": int(data.x_train.shape[0]), "eval": int(data.x_eval.shape[0]),
            "classes_or_vocab": data.n_classes, "metric": data.metric, "content_hash": data.content_hash,
        })
    models = []
    for name in MODELS:
        if name.startswith("lm_"):
            size = LM_SIZES[name[3:]]
            models.append({"name": name, "parameters": size.parameters(256), "counted_for": "vocab 256",
                           "d_model": size.d_model, "layers": size.layers, "heads": size.heads,
                           "context": size.context})
        else:
            models.append({"name": name, "parameters": count_parameters(build_model(name, DATASETS["digits"](), 0)),
                           "counted_for": "digits"})
    if as_json:
        click.echo(json.dumps({"datasets": datasets, "models": models}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("dataset", "kind", "train", "eval", "classes/vocab", "metric", "content hash")
    for d in datasets:
        table.add_row(d["name"], d["kind"], str(d["train"]), str(d["eval"]), str(d["classes_or_vocab"]), d["metric"],
                      d["content_hash"])
    console.print(table)
    table = Table("model", "parameters", "counted for")
    for m in models:
        table.add_row(m["name"], f"{m['parameters']:,}", m["counted_for"])
    console.print(table)


@cli.command()
@click.option("--family", help="Only this family.")
@click.option("--task", help="Only this task ('family/name' or its name).")
@click.option("--method", help="Only this method, or several comma-separated (adamw,lion).")
@click.option("--impl", help="Only this implementation, or several comma-separated.")
@click.option("--grid", help="smoke | cpu | gpu  [default: gpu when CUDA is there, else cpu]")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--seeds", type=int, help="Seeds per case  [default: 2 on smoke, else 3]")
@click.option("--timeout", "timeout_s", type=float, help="Per-case timeout in seconds  [default: per grid]")
@click.option("--shard", "shard_spec", metavar="i/N",
              help="Run only shard i of N: a deterministic split of the cases (the same on every machine).")
@click.option("--resume", is_flag=True,
              help="Finish the newest run of this same command (same cases, options, plugins and commit) in the "
              "shard directory: only its missing cases run. Starts afresh when there is none; does nothing when "
              "it already finished.")
@click.option("--memory-limit", "memory_limit_gib", type=float, metavar="GIB",
              help="Cap each worker process's memory: a case that allocates past it is recorded oom (on the CPU the "
              "cap covers the whole worker, Python and torch included).")
@DB_OPTION
@click.option("--shard-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the run's JSONL shard goes  [default: runs/ beside the DB]")
@PLUGIN_OPTION
def run(
    family: str | None, task: str | None, method: str | None, impl: str | None, grid: str | None,
    device: str, seeds: int | None, timeout_s: float | None, shard_spec: str | None, resume: bool,
    memory_limit_gib: float | None, db: Path, shard_dir: Path | None, plugins: tuple[Path, ...],
) -> None:
    """Run cases and store every outcome, failures included.

    Each case runs in a worker process: an exception, a crash or a hang past the
    timeout is recorded (error / oom / timeout) and the run goes on. Each finished
    case is appended to the run's shard and synced to disk before the next starts;
    at the end the shard is ingested into the DB (several runs may share one DB:
    each waits its turn). After a kill, the same command with --resume finishes
    only the missing cases.

    \b
    Example:
        effbench run --grid smoke
        effbench run --family loss --impl chunked --seeds 5
        effbench run --plugin my_methods.py --task linear_cross_entropy
        effbench run --grid gpu --shard 2/4      # one of four machines
        effbench run --grid gpu --resume         # after a crash or kill -9
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from effbench.registry import UsageError
    from effbench.runner import (
        WorkerError,
        find_resumable,
        make_config,
        new_run,
        parse_shard,
        plan,
        plan_fingerprint,
        run_cases,
        shard_of,
        shard_path,
    )
    from effbench.store import Store, StoreError

    console = Console(stderr=True)
    registry = _registry(plugins)
    shard_dir = shard_dir or db.parent / "runs"
    try:
        config = make_config(grid, device, seeds, timeout_s, memory_limit_gib)
        cases = plan(registry, config, family=family, task=task, method=method, impl=impl)
        if shard_spec is not None:
            index, count = parse_shard(shard_spec)
            total = len(cases)
            cases = shard_of(registry, cases, index, count)
        fingerprint = plan_fingerprint(config, cases, registry.plugins)
    except UsageError as exc:
        _fail(str(exc))
    try:
        earlier = find_resumable(shard_dir, fingerprint) if cases else None
    except UsageError as exc:
        if resume:
            _fail(str(exc))
        earlier = None  # a fresh run does not need the earlier shard
    if not cases:
        _fail("no cases match these filters" + (f" in shard {shard_spec}" if shard_spec else ""))
    if shard_spec is not None:
        console.print(f"shard {shard_spec}: {len(cases)} of {total} cases")

    def ingest_shard(shard: Path) -> int:
        with Store(db, on_wait=console.print) as store:
            return store.ingest_shard(shard).total

    resume_from = None
    if earlier is not None and resume:
        path, contents = earlier
        if contents.complete:
            try:
                added = ingest_shard(path)  # idempotent: makes sure the finished run is in this DB
            except StoreError as exc:
                _fail(str(exc))
            console.print(f"nothing to resume: run {contents.run.run_id} finished all {len(contents.done)} cases "
                          f"({path}; {added} rows added to {db})")
            return
        resume_from = contents
        console.print(f"resuming run {contents.run.run_id}: {len(contents.done)} of {len(cases)} cases done")
    elif earlier is not None and not earlier[1].complete:
        console.print(f"note: run {earlier[1].run.run_id} of this same command stopped after "
                      f"{len(earlier[1].done)} of {len(cases)} cases; --resume would finish it")
    try:
        Store(db, on_wait=console.print).close()  # fail before hours of work if the DB is unusable
    except StoreError as exc:
        _fail(str(exc))
    limit = f", memory limit {memory_limit_gib:g} GiB" if memory_limit_gib else ""
    console.print(f"[bold]{len(cases)} cases[/] on grid [bold]{config.grid}[/], device {config.device}, "
                  f"{config.seeds} seed(s), timeout {config.timeout_s:g} s{limit}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        done_before = len(resume_from.done) if resume_from else 0
        bar = progress.add_task("starting", total=len(cases), completed=done_before)

        def on_case(case: Any, result: Any) -> None:
            if result.status not in ("ok", "skipped", "unavailable"):
                progress.console.print(f"[red]{result.status}[/] {case.label()}: {result.message}", markup=False)
            progress.update(bar, advance=1, description=f"{case.task} {case.method}/{case.impl}")

        run_info = resume_from.run if resume_from else new_run(config, shlex.join(["effbench", *sys.argv[1:]]))
        try:
            summary = run_cases(registry, cases, config, shard_dir, on_case=on_case, run=run_info,
                                resume=resume_from)
        except UsageError as exc:  # the shard is busy: another process runs or resumes this run
            _fail(str(exc))
        except (WorkerError, KeyboardInterrupt) as exc:
            # Keep what finished: the shard holds every completed case; put it in the DB now.
            shard = shard_path(shard_dir, run_info)
            saved = ""
            if shard.exists():
                try:
                    saved = f"; {ingest_shard(shard)} rows of finished cases saved to {db}"
                except StoreError as store_exc:
                    saved = f"; finished cases are in {shard} ({store_exc})"
            if isinstance(exc, KeyboardInterrupt):
                console.print(f"interrupted{saved}; `--resume` finishes the run")
                sys.exit(130)
            _fail(f"{exc}{saved}")
    try:
        added = ingest_shard(summary.shard)
    except StoreError as exc:
        _fail(f"{exc} (the shard {summary.shard} holds every result: `effbench ingest` it later)")
    table = Table("status", "cases")
    for status, count in summary.counts.items():
        if count:
            table.add_row(status, str(count))
    console.print(table)
    resumed = f" ({summary.resumed} of them before the resume)" if summary.resumed else ""
    console.print(f"run {summary.run.run_id}: {len(cases)} cases{resumed}, shard {summary.shard}, "
                  f"{added} rows added to {db}")


def _ingest_into(db: Path, paths: tuple[Path, ...]) -> list[Any]:
    """All sources read and checked first, then written in one transaction: a bad one changes nothing."""
    from effbench.store import Store, StoreError

    try:
        with Store(db, on_wait=lambda message: click.echo(message, err=True)) as store:
            reports = store.ingest_all(paths)
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
@click.argument("sql")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print rows as a JSON list of objects.")
@click.option("--csv", "as_csv", is_flag=True, help="Print rows as CSV.")
def query(sql: str, db: Path, as_json: bool, as_csv: bool) -> None:
    """Run read-only SQL against the DB (tables: runs, results, samples, curves, methods; view: latest).

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
        from rich.console import Console
        from rich.table import Table

        table = Table(*frame.columns)
        for row in frame.iter_rows():
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)


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
def compare(base: str, head: str, db: Path, metrics: tuple[str, ...], threshold: float, alpha: float,
            show_all: bool, as_json: bool) -> None:
    """Compare two runs (run ids or git commits) case by case; exit 1 on a regression (a CI gate).

    A metric changed when head/base is beyond --threshold either way and beyond the noise
    (Mann-Whitney U on the raw timing samples at --alpha when both sides have 5 or more;
    the ratio alone otherwise). Lower is better for every compared metric. A case that was
    ok in BASE and is wrong, error, oom or timeout in HEAD is a regression.

    \b
    Example:
        effbench compare 20261202T130818Z-da014d73 20261203T090000Z-0a1b2c3d
        effbench compare 123e40f HEAD_COMMIT --metric time_ms --threshold 1.05
    """
    import polars as pl

    from effbench.analysis import COMPARED, changes
    from effbench.store import StoreError

    if not threshold > 1:  # NaN too
        _fail(f"--threshold must be above 1, got {threshold}")
    if not 0 < alpha < 1:
        _fail(f"--alpha must be between 0 and 1, got {alpha}")
    try:
        frame = changes(db, base, head, metrics or COMPARED, threshold=threshold, alpha=alpha)
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
        from rich.console import Console
        from rich.table import Table

        shown = frame if show_all else frame.filter(pl.col("verdict").is_in(["regression", "improvement"]))
        table = Table("verdict", "task", "method/impl", "point", "dtype", "device", "metric", "base", "head",
                      "ratio", "p")
        for r in shown.iter_rows(named=True):
            table.add_row(r["verdict"], r["task"], f"{r['method']}/{r['impl']}", r["point_key"], r["dtype"],
                          r["device"], r["metric"], _num(r["base"]), _num(r["head"]),
                          "" if r["ratio"] is None else f"{r['ratio']:.3f}x",
                          "" if r["p_value"] is None else f"{r['p_value']:.2g}")
        if shown.height:
            Console().print(table)
        click.echo(f"{frame.height} compared: {regressions} regression(s), {improvements} improvement(s) "
                   f"(rule: ratio beyond {threshold:g}x and Mann-Whitney p < {alpha:g} where samples allow)")
    if regressions:
        sys.exit(1)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


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


def main() -> None:
    try:
        cli(prog_name="effbench")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
