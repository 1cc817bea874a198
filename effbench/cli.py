"""The ``effbench`` command: a thin shell over the registry, runner, store and site.

Heavy modules (torch, the runner, plotly) are imported inside the command that needs
them, so ``effbench query`` and ``effbench site`` start fast and work without torch.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from effbench.rows import FAMILIES

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
@click.option("--family", help=f"Only this family ({', '.join(FAMILIES)}).")
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
    from effbench.console import print_table

    rows = []
    for e in entries:
        paper = f"{e['paper']} (arXiv:{e['arxiv']})" if e["arxiv"] else (e["paper"] or "")
        impls = "(schedule)" if e["kind"] == "schedule" else ", ".join(e["impls"])
        rows.append([e["family"], e["task"], e["method"], impls, paper])
    print_table(["family", "task", "method", "impls", "paper"], rows)


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
    from effbench.console import print_table

    print_table(["dataset", "kind", "train", "eval", "classes/vocab", "metric", "content hash"],
                [[d["name"], d["kind"], d["train"], d["eval"], d["classes_or_vocab"], d["metric"], d["content_hash"]]
                 for d in datasets])
    print_table(["model", "parameters", "counted for"],
                [[m["name"], f"{m['parameters']:,}", m["counted_for"]] for m in models])


def _say(text: str) -> None:
    """One plain line on stderr (never read as markup: case messages hold brackets)."""
    click.echo(text, err=True)


@cli.command()
@click.option("--family", help=f"Only this family ({', '.join(FAMILIES)}).")
@click.option("--task", help="Only this task ('family/name' or its name).")
@click.option("--method", help="Only this method, or several comma-separated (adamw,lion).")
@click.option("--impl", help="Only this implementation, or several comma-separated.")
@click.option("--grid", help="smoke | cpu | gpu | gpu-smoke  [default: gpu when CUDA is there, else cpu]. smoke "
              "checks that everything runs (each method once, at its first covered point, one seed, in about a "
              "minute on 2 cores); its times are not for comparison. gpu-smoke: the gpu grid's headline "
              "comparisons (linear CE at the Gemma-2 point, AdamW at 124M, sliding-window attention), one seed, "
              "about 8 minutes on one H100.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--seeds", type=int, help="Scored seeds per case  [default: 1 on smoke; else 3 for kernel tasks, "
              "5 for workload tasks, whose tuning runs on a seed of its own]")
@click.option("--timeout", "timeout_s", type=float, help="Per-case timeout in seconds  [default: per grid]")
@click.option("--shard", "shard_spec", metavar="i/N",
              help="Run only shard i of N: a deterministic split of the cases (the same on every machine).")
@click.option("--resume", is_flag=True,
              help="Finish an interrupted run of this same command (same cases, options, plugins and commit) in "
              "the shard directory, the one with the most finished cases: only its missing cases run. Starts "
              "afresh when there is none; does nothing when it already finished.")
@click.option("--dry-run", is_flag=True,
              help="List the planned cases by task with an estimated time (from earlier runs in the DB, else "
              "each task's declared cost), and run nothing.")
@click.option("--all-points", is_flag=True,
              help="Run every point of the grid for every method (smoke otherwise stops at a method's first point "
              "that it covers).")
@click.option("--memory-limit", "memory_limit_gib", type=float, metavar="GIB",
              help="Cap each worker process's memory: a case that allocates past it is recorded oom (on the CPU the "
              "cap covers the whole worker, Python and torch included).")
@DB_OPTION
@click.option("--shard-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the run's JSONL shard goes  [default: local/runs/ beside the DB, which git ignores; "
              "the committed runs are in results/runs/]")
@PLUGIN_OPTION
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the cases run: this machine, or a Ray cluster (each case group a Ray task: one GPU per "
              "cuda group; a lost node's cases are retried twice; the shard is written here as locally). Needs "
              "`pip install 'effbench[ray]'`; see docs/ray.md.")
@click.option("--ray-address", metavar="ADDR",
              help="The Ray cluster for --executor ray: 'auto' (the one this machine belongs to) or "
              "'ray://HEAD:10001'  [default: RAY_ADDRESS, else a new local cluster]")
def run(
    family: str | None, task: str | None, method: str | None, impl: str | None, grid: str | None,
    device: str, seeds: int | None, timeout_s: float | None, shard_spec: str | None, resume: bool,
    dry_run: bool, all_points: bool, memory_limit_gib: float | None, db: Path, shard_dir: Path | None,
    plugins: tuple[Path, ...], executor: str, ray_address: str | None,
) -> None:
    """Run cases and store every outcome, failures included.

    Each case runs in a worker process: an exception, a crash or a hang past the
    timeout is recorded (error / oom / timeout) and the run goes on. Each finished
    case is appended to the run's shard and synced to disk before the next starts;
    at the end the shard is ingested into the DB (several runs may share one DB:
    each waits its turn). Ctrl-C or SIGTERM stops the run: the worker ends, the
    finished cases go into the DB, and the same command with --resume finishes it
    (so does --resume after a kill -9).

    Progress: a live bar on a terminal; in a pipe or a file (CI), plain lines: one per
    failing case and a summary every minute. The run's estimate comes first.

    \b
    Example:
        effbench run --grid smoke
        effbench run --grid cpu --dry-run        # what it would run, and for how long
        effbench run --family loss --impl chunked --seeds 5
        effbench run --plugin my_methods.py --task linear_cross_entropy
        effbench run --grid gpu --shard 2/4      # one of four machines
        effbench run --grid gpu --resume         # after Ctrl-C, SIGTERM or kill -9
        effbench run --grid gpu --device cuda --executor ray --ray-address auto
    """
    import signal

    from effbench.progress import RunProgress
    from effbench.registry import UsageError
    from effbench.run import session
    from effbench.run.plan import make_config, parse_shard, plan, shard_of
    from effbench.store import Store, StoreError

    if ray_address is not None and executor != "ray":
        raise click.UsageError("--ray-address needs --executor ray")
    cluster = None
    if executor == "ray":
        from effbench.run.ray_executor import RayExecutor, require_ray

        try:
            require_ray()
        except UsageError as exc:
            _fail(str(exc))
        cluster = RayExecutor(address=ray_address, say=_say)
    registry = _registry(plugins)
    shard_dir = shard_dir or db.parent / "local" / "runs"
    try:
        # on Ray the cases' device is the cluster's: the driver need not have it
        config = make_config(grid, device, seeds, timeout_s, memory_limit_gib, all_points=all_points,
                             dry_run=dry_run or cluster is not None)
        cases = plan(registry, config, family=family, task=task, method=method, impl=impl)
        total = len(cases)
        if shard_spec is not None:
            index, count = parse_shard(shard_spec)
            cases = shard_of(registry, cases, index, count)
    except UsageError as exc:
        _fail(str(exc))
    if not cases:
        _fail("no cases match these filters" + (f" in shard {shard_spec}" if shard_spec else ""))
    by_task, per_case = _plan_estimates(registry, config, cases, db)
    if dry_run:
        _print_plan(config, by_task, shard_spec, len(cases), total)
        return
    try:
        Store(db, on_wait=_say).close()  # fail before hours of work if the DB is unusable
    except StoreError as exc:
        _fail(str(exc))
    if shard_spec is not None:
        _say(f"shard {shard_spec}: {len(cases)} of {total} cases")
    limit = f", memory limit {memory_limit_gib:g} GiB" if memory_limit_gib else ""
    expected = sum(e.cases for e in by_task.values())
    unknown = sum(e.sources["unknown"] for e in by_task.values())
    _say(f"{len(cases)} cases on grid {config.grid}, device {config.device}, {config.describe_seeds()}, timeout "
         f"{config.timeout_s:g} s{limit}"
         + (f"; each method stops at its first covered point (about {expected} cases run)"
            if config.points == "first_covered" else "")
         + f"; estimated {_duration(sum(e.seconds for e in by_task.values()))}"
         + (f" + {unknown} cases of unknown cost" if unknown else "")
         + ("" if config.timed else "; smoke: times are for checking, not for comparison")
         + ("; on a Ray cluster" if cluster is not None else ""))

    def store(shard: Path) -> int:
        with Store(db, on_wait=_say) as opened:
            return opened.ingest_shard(shard).total

    def progress(total: int, done_before: int) -> RunProgress:
        return RunProgress(total, done_before=done_before, estimates=per_case, interval_s=_progress_interval(),
                           per_node=cluster is not None)

    argv = ["effbench", *sys.argv[1:]]
    try:
        outcome = session.run(registry, config, cases, shard_dir, command=shlex.join(argv), resume=resume,
                              store=store, say=_say, progress=progress, executor=cluster)
    except UsageError as exc:  # the shard is busy, or the run to resume is unreadable
        _fail(str(exc))
    except StoreError as exc:
        _fail(f"{exc} (the run's shard holds every result: `effbench ingest` it later)")
    except session.SessionError as exc:
        _fail(str(exc))
    if outcome.interrupted is not None:
        again = argv if "--resume" in argv else [*argv, "--resume"]
        _say(f"interrupted by {signal.Signals(outcome.interrupted).name}; {outcome.saved} to {db}; to finish the "
             f"run: {shlex.join(again)}")
        sys.exit(128 + outcome.interrupted)
    summary, added = outcome.summary, outcome.added
    if summary is None:  # --resume found the run finished: session.run said so
        return
    seen = [s for s in _STATUS_ORDER if summary.counts.get(s)]
    rows = [[task_key, sum(c.values()), *[c.get(s) or "" for s in seen]]
            for task_key, c in sorted(summary.by_task.items())]
    from effbench.console import print_table

    print_table(["task", "cases", *seen], rows, stream=sys.stderr)
    resumed = f" ({summary.resumed} of them before the resume)" if summary.resumed else ""
    counts = ", ".join(f"{s} {n}" for s, n in summary.counts.items() if n)
    _say(f"run {summary.run.run_id}: {summary.ran} cases{resumed} ({counts}), shard {summary.shard}, "
         f"{added} rows added to {db}")


def _progress_interval() -> float:
    """Seconds between summary lines in a log (``EFFBENCH_PROGRESS_INTERVAL_S``, default 60)."""
    import os

    try:
        return max(0.2, float(os.environ.get("EFFBENCH_PROGRESS_INTERVAL_S", "60")))
    except ValueError:
        return 60.0


_STATUS_ORDER = ("ok", "wrong", "error", "oom", "timeout", "unavailable", "skipped")


def _duration(seconds: float | None) -> str:
    from effbench.console import duration

    return duration(seconds)


def _plan_estimates(registry: Any, config: Any, cases: list[Any], db: Path) -> tuple[dict[str, Any], dict]:
    """Per task (``estimate.TaskEstimate``) and per case key (seconds or None)."""
    from effbench.estimate import History, estimate

    history = History(db)
    declared = {key: task.cost_s.get(config.base_grid) for key, task in registry.tasks.items()}
    keys = [(c.task, c.method, c.impl, c.point_key, c.dtype, c.device, c.seed) for c in cases]
    by_task = estimate(keys, config.base_grid, declared, history, config.points == "first_covered")
    per_case = {c.key: history.seconds(k, config.base_grid, declared[c.task])[0]
                for c, k in zip(cases, keys, strict=True)}
    return by_task, per_case


def _print_plan(config: Any, tasks: dict[str, Any], shard_spec: str | None, planned: int, total: int) -> None:
    from effbench.console import print_table

    first = config.points == "first_covered"
    rows = []
    for name, e in sorted(tasks.items()):
        count = f"{e.cases} (of {e.planned} planned)" if first and e.planned != e.cases else str(e.cases)
        rows.append([name, count, _duration(e.seconds) + ("" if e.complete else " + unknown"),
                     e.describe_sources()])
    print_table(["task", "cases", "estimate", "from"], rows)
    runs = sum(e.cases for e in tasks.values())
    unknown = sum(e.sources["unknown"] for e in tasks.values())
    where = f" (shard {shard_spec}: {planned} of {total} planned cases)" if shard_spec else ""
    click.echo(f"grid {config.grid} on {config.device}, {config.describe_seeds()}{where}: {runs} cases, estimated "
               f"{_duration(sum(e.seconds for e in tasks.values()))}"
               + (f" + {unknown} cases of unknown cost" if unknown else "")
               + ("" if config.timed else "; smoke times are for checking, not for comparison"))


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


def _kernel_filter(tokens: str | None, names: list[str]) -> set[str]:
    """Kernels that ``--kernel`` picks: each token is 'module.function', a module or a function name."""
    if tokens is None:
        return set(names)
    wanted = [t.strip() for t in tokens.split(",") if t.strip()]
    if not wanted:
        _fail(f"empty kernel filter {tokens!r}")
    picked: set[str] = set()
    for token in wanted:
        hits = {n for n in names if token in (n, n.split(".", 1)[0], n.split(".", 1)[1])}
        if not hits:
            modules = sorted({n.split(".", 1)[0] for n in names})
            _fail(f"unknown kernel {token!r}; valid: a module ({', '.join(modules)}), a function or 'module.function'")
        picked |= hits
    return picked


@cli.command()
@click.option("--arch", "arch_list", default="sm_80,sm_90", show_default=True,
              help="GPU archs to compile for, comma-separated (sm_80, sm_90).")
@click.option("--kernel", "kernel_filter", metavar="NAMES",
              help="Only these kernels, comma-separated: a kernel module, a function, or 'module.function'.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of builds: {kernel, arch, config, status, registers, spills (bytes), "
              "spill_stores, spill_loads, shared_bytes, shared_limit, compile_s, message, methods, triton_version}.")
@DB_OPTION
@click.option("--no-store", is_flag=True, help="Do not write the builds to the DB.")
def kernels(arch_list: str, kernel_filter: str | None, as_json: bool, db: Path, no_store: bool) -> None:
    """Compile every Triton kernel for real GPUs, on any machine, and report what each build costs.

    Every configuration the gpu grid launches (dtype, block sizes, head dims, num_warps,
    num_stages; autotune configs expanded), as each kernel module declares it in
    compile_specs(), goes through Triton's real pipeline and the ptxas in its wheel for each
    arch. Reported per build: registers per thread, spilled bytes (local memory per thread),
    shared memory per block against the arch's limit (sm_80 166912 B, sm_90 232448 B) and the
    compile time. Progress goes to stderr. The builds are stored in the DB's kernel_builds table
    (newest per kernel, config, arch, triton version). Exit 1 when a build fails to compile or
    overflows shared memory (naming kernel, config and the compiler's message), or when a
    kernel has no spec.

    \b
    Example:
        effbench kernels --arch sm_90 --kernel block_sparse_attention
        effbench kernels --json --no-store > kernel_builds.json
    """
    import time

    from effbench import kernelcheck
    from effbench.console import duration, print_table

    arches = [a.strip() for a in arch_list.split(",") if a.strip()]
    unknown = [a for a in arches if a not in kernelcheck.ARCHES]
    if not arches or unknown:
        _fail(f"unknown arch {', '.join(unknown) or repr(arch_list)}; valid: {', '.join(kernelcheck.ARCHES)}")
    try:
        modules = kernelcheck.kernel_modules()
        specs = kernelcheck.all_specs(modules)
        names = sorted(set(kernelcheck.launched_kernels(modules)) | {s.kernel for s in specs})
        picked = _kernel_filter(kernel_filter, names)
        specs = sorted((s for s in specs if s.kernel in picked), key=lambda s: (s.kernel, s.config))
        missing = [k for k in kernelcheck.uncovered(modules, specs) if k in picked]
        users = kernelcheck.kernel_users(_registry(()).methods.values())
        click.echo(f"compiling {len(specs)} configurations of {len({s.kernel for s in specs})} kernels for "
                   f"{', '.join(arches)}", err=True)
        start = time.perf_counter()

        def progress(i: int, total: int, b: Any) -> None:
            what = (f"{b.registers} regs, {b.spills} B spilled, {b.shared_bytes} B shared" if b.status != "error"
                    else b.message.splitlines()[0][:160])
            click.echo(f"[{i}/{total}] {b.status:<8} {b.kernel} {b.arch} {b.config}: {what} ({b.compile_s} s)",
                       err=True)

        builds = kernelcheck.check(specs, arches, users, on_build=progress)
    except kernelcheck.KernelCheckError as exc:
        _fail(str(exc))
    elapsed = time.perf_counter() - start
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(b) for b in builds], indent=2))
    else:
        rows = [[b.kernel, b.arch, b.config, b.status, b.registers, b.spills, b.shared_bytes,
                 "" if b.shared_bytes is None else f"{100 * b.shared_bytes / b.shared_limit:.0f}%", b.compile_s]
                for b in builds]
        print_table(["kernel", "arch", "config", "status", "regs", "spills_B", "shared_B", "of_limit", "compile_s"],
                    rows)
    failed = [b for b in builds if b.status != "ok"]
    spilled = [b for b in builds if b.spills]
    compile_s = sum(b.compile_s or 0 for b in builds)
    click.echo(f"{len(builds)} builds in {duration(elapsed)} (compiling {compile_s:.1f} s): "
               f"{len(builds) - len(failed)} ok, {len(spilled)} with spills, {len(failed)} failed", err=True)
    if builds and not no_store:
        from effbench.store import Store, StoreError

        try:
            with Store(db, on_wait=lambda message: click.echo(message, err=True)) as store:
                store.insert(builds)
        except StoreError as exc:
            _fail(str(exc))
        click.echo(f"stored {len(builds)} builds in {db} (table kernel_builds)", err=True)
    for b in failed:
        lines = b.message.splitlines()
        more = f"\n  ... ({len(lines) - 40} more lines)" if len(lines) > 40 else ""
        click.echo(f"FAILED {b.status}: {b.kernel} [{b.config}] on {b.arch}:\n  " + "\n  ".join(lines[:40]) + more,
                   err=True)
    for kernel in missing:
        click.echo(f"FAILED: {kernel} has no compile spec (declare it in its module's compile_specs())", err=True)
    if failed or missing:
        sys.exit(1)


def main() -> None:
    from effbench.errors import Interrupted

    try:
        cli(prog_name="effbench")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Interrupted as exc:  # outside `run`'s own handling (a second signal while it saves)
        click.echo("interrupted", err=True)
        sys.exit(128 + exc.signum)


if __name__ == "__main__":
    main()
