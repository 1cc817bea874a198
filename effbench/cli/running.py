"""``effbench run``: plan, estimate, run through ``effbench.run.session`` and store."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from effbench.cli.base import DB_OPTION, PLUGIN_OPTION, _duration, _fail, _registry, _say, cli
from effbench.rows import FAMILIES


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
