"""Polars views of the store: results with their provenance, per-case summaries, speedups, profiles."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl

from effbench.store import DEFAULT_DB, Store

KERNEL_COLUMNS = ("time_ms", "peak_mem_bytes", "rel_error", "roofline_fraction", "work_gb_per_s", "work_tflop_s",
                  "peak_gb_per_s", "peak_tflop_s")
# A case is also keyed by the hardware it ran on (``hardware_of`` in schema.sql: the GPU or CPU model, else the
# machine): numbers from two machines are two cases, never one case's values to divide or compare. The model is
# the row's own node's (a Ray run's cases ran on several nodes), else its run's machine's (rows before schema 4).
CASE = ["task", "method", "impl", "point_key", "dtype", "device", "hardware"]


def _hardware_sql(node: str = "r") -> str:
    """The hardware of row ``r`` of run ``u``; ``node``: the alias of the results row naming its node."""
    return (f"hardware_of(r.device, coalesce({node}.node_hardware, u.gpu_name), "
            f"coalesce({node}.node_hardware, u.cpu_name), coalesce({node}.node, u.machine))")


HARDWARE_SQL = _hardware_sql()  # r: results, u: runs
_CASE_COLUMNS = ("run_id", "task", "method", "impl", "point_key", "dtype", "device", "seed")
# the node of row r's case (r of a table beside results, e.g. samples), as n
NODE_JOIN = (f"LEFT JOIN (SELECT DISTINCT {', '.join(_CASE_COLUMNS)}, node, node_hardware FROM results) n ON "
             + " AND ".join(f"n.{c} = r.{c}" for c in _CASE_COLUMNS))


# Memory is measured once per case, so its noise model is a floor: a change smaller than this is never a change.
# CPU: the resident set moves by whole pages and the allocator's arenas (~1 MB between identical runs, seen);
# CUDA: the caching allocator rounds large blocks to 2 MiB.
MEMORY_FLOOR_BYTES = {"cpu": 4 << 20, "cuda": 2 << 20}
MEMORY_METRICS = ("peak_mem_bytes", "peak_mem_abs_bytes", "peak_mem_fwd_bytes", "state_bytes")


class HardwareMismatch(ValueError):
    """Two runs measured on different hardware were to be compared: their ratio would measure the machines."""


def open_results(db: str | Path = DEFAULT_DB, latest: bool = True, by_grid: bool = False) -> pl.DataFrame:
    """Result rows joined with run provenance (``grid`` included); ``latest`` keeps each case's newest run only,
    and with ``by_grid`` each case's newest run of every grid (a smoke check run after a cpu timing run of the
    same case then never hides the timing: the site shows one grid at a time)."""
    if by_grid and not latest:
        raise ValueError("by_grid keeps the newest run of each grid: it needs latest=True")
    with Store(db, read_only=True) as store:
        if latest and by_grid:
            return store.query(
                f"SELECT r.*, u.started_at, u.source, u.gpu_name, {HARDWARE_SQL} AS hardware, u.grid "
                "FROM results r JOIN runs u USING (run_id) QUALIFY row_number() OVER ("
                "PARTITION BY r.task, r.method, r.impl, r.point_key, r.dtype, r.device, r.seed, r.metric, "
                f"{HARDWARE_SQL}, coalesce(u.grid, '') ORDER BY u.started_at DESC, r.run_id DESC) = 1")
        if latest:
            return store.query("SELECT l.*, u.grid FROM latest l JOIN runs u USING (run_id)")
        return store.query(f"SELECT r.*, u.started_at, u.source, u.gpu_name, {HARDWARE_SQL} AS hardware, u.grid "
                           "FROM results r JOIN runs u USING (run_id)")


def runs(db: str | Path = DEFAULT_DB) -> pl.DataFrame:
    """Every run, newest first."""
    with Store(db, read_only=True) as store:
        return store.query("SELECT * FROM runs ORDER BY started_at DESC")


def methods(db: str | Path = DEFAULT_DB) -> pl.DataFrame:
    with Store(db, read_only=True) as store:
        return store.query("SELECT * FROM methods ORDER BY family, task, method")


def kernel_builds(db: str | Path = DEFAULT_DB, method: str | None = None) -> pl.DataFrame:
    """Triton kernels compiled for GPU archs (``effbench kernels``): registers, spills, shared memory per
    kernel, config, arch and Triton version; ``method`` ('task:method') keeps the builds that method launches.
    Empty when the DB has no builds (or predates the table)."""
    with Store(db, read_only=True) as store:
        has = store.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'kernel_builds'")
        if not has["n"][0]:
            return pl.DataFrame()
        frame = store.query("SELECT * FROM kernel_builds ORDER BY kernel, config, arch, triton_version")
    if method is not None and not frame.is_empty():
        frame = frame.filter(pl.col("methods").fill_null("").str.split(",").list.contains(method))
    return frame


def curves(db: str | Path = DEFAULT_DB, task: str | None = None, rows: pl.DataFrame | None = None) -> pl.DataFrame:
    """Training curves of the runs that result ``rows`` (carrying ``run_id`` and the case's columns) come from,
    case by case: a grid's or a machine's own curves. Without ``rows``, those of the ``latest`` view: each case's
    newest run on each hardware (the row's node's, as ``CASE`` keys it)."""
    keys = list(_CASE_COLUMNS)
    if rows is None:
        rows = open_results(db)
        rows = rows.filter(pl.col("task") == task) if task is not None else rows
    if rows.is_empty():
        return pl.DataFrame()
    wanted = rows.select(keys).unique()
    with Store(db, read_only=True) as store:
        found = store.query(
            "SELECT c.* FROM curves c WHERE (? IS NULL OR c.task = ?) AND list_contains(?, c.run_id) "
            "ORDER BY c.task, c.method, c.impl, c.seed, c.step", [task, task, sorted(set(wanted["run_id"]))])
    return found.join(wanted, on=keys, how="semi", maintain_order="left") if not found.is_empty() else found


def case_status(frame: pl.DataFrame) -> pl.DataFrame:
    """One status per case and seed (all rows of a case share it); seed -1 rows are run summaries."""
    grid = ["grid"] if "grid" in frame.columns else []  # a case of two grids (the site's by-grid rows) is two
    return frame.filter(pl.col("seed") >= 0).group_by([*CASE, *grid, "seed"]).agg(
        pl.col("status").first(), pl.col("message").filter(pl.col("status") != "ok").first()
    )


def kernel_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Per kernel case: median time and memory (seed 0), worst error over seeds, worst status."""
    severity = {"ok": 0, "skipped": 1, "unavailable": 2, "wrong": 3, "timeout": 4, "oom": 5, "error": 6}
    kernel_tasks = frame.filter(pl.col("metric") == "rel_error")["task"].unique()
    rows = frame.filter(pl.col("metric").is_in(KERNEL_COLUMNS) & pl.col("task").is_in(kernel_tasks.implode()))
    if rows.is_empty():
        return pl.DataFrame()
    status = (
        rows.with_columns(pl.col("status").replace_strict(severity, default=6).alias("_sev"))
        .sort("_sev", descending=True)
        .group_by(CASE, maintain_order=True)
        .agg(pl.col("status").first(),
             pl.col("message").filter(pl.col("status") != "ok").first().fill_null(""),
             pl.col("family").first(),
             pl.col("gpu_name").first(), pl.col("point").first(),
             *([pl.col("grid").first()] if "grid" in rows.columns else []))
    )
    values = rows.group_by([*CASE, "metric"]).agg(pl.col("value").max()).pivot(
        on="metric", index=CASE, values="value"
    )
    for column in KERNEL_COLUMNS:
        if column not in values.columns:
            values = values.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    return status.join(values, on=CASE, how="left").sort(CASE)


def speedups(frame: pl.DataFrame) -> pl.DataFrame:
    """Time of each implementation relative to the method's reference at the same point (>1 = faster), and
    memory (``memory_ratio``, >1 = less; null when either peak is under ``MEMORY_FLOOR_BYTES``)."""
    summary = kernel_summary(frame)
    if summary.is_empty():
        return summary
    # the reference measured on the same hardware only: without one there, no speedup (never a cross-machine ratio)
    same = ["task", "method", "point_key", "dtype", "device", "hardware"]
    ref = summary.filter(pl.col("impl") == "reference").select(
        *same, pl.col("time_ms").alias("ref_time_ms"), pl.col("peak_mem_bytes").alias("ref_mem_bytes"),
    )
    # memory is read at page or allocator granularity: below the device's floor a peak is noise (a CPU
    # implementation that allocates little reads 0), so a ratio needs both sides above it
    floor = pl.col("device").replace_strict(MEMORY_FLOOR_BYTES, default=0, return_dtype=pl.Float64)
    measurable = (pl.col("ref_mem_bytes") >= floor) & (pl.col("peak_mem_bytes") >= floor)
    return summary.join(ref, on=same, how="left").with_columns(
        (pl.col("ref_time_ms") / pl.col("time_ms")).alias("speedup"),
        pl.when(measurable).then(pl.col("ref_mem_bytes") / pl.col("peak_mem_bytes")).alias("memory_ratio"),
    )


def workload_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Per workload method: seeds, mean/std of the final metric, median steps to target, seeds reaching it."""
    rows = frame.filter(pl.col("metric").is_in(["final_metric", "final_loss", "steps_to_target", "time_to_target_s"]))
    if rows.is_empty():
        return pl.DataFrame()
    wide = rows.pivot(on="metric", index=[*CASE, "seed", "status"], values="value")
    for column in ("final_metric", "final_loss", "steps_to_target", "time_to_target_s"):
        if column not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    return (
        wide.group_by(CASE)
        .agg(
            pl.len().alias("seeds"),
            (pl.col("status") == "ok").sum().alias("ok_seeds"),
            pl.col("final_metric").mean().alias("final_metric_mean"),
            pl.col("final_metric").std().alias("final_metric_std"),
            pl.col("final_loss").mean().alias("final_loss_mean"),
            pl.col("steps_to_target").median().alias("steps_to_target_median"),
            pl.col("time_to_target_s").median().alias("time_to_target_s_median"),
            pl.col("steps_to_target").is_not_null().sum().alias("seeds_reaching_target"),
        )
        .sort(CASE)
    )


def performance_profiles(
    frame: pl.DataFrame, cost: str = "steps_to_target", taus: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
) -> pl.DataFrame:
    """AlgoPerf-style profiles, one per task: over the task's workloads (point x dtype x device), rho(tau) per
    method/impl, the share of workloads it solved within tau x the best cost. Tasks are never pooled (a
    sampler is not ranked against an optimizer); the ``task`` column says which profile a row belongs to.

    A method's cost on a workload is the median over seeds of ``cost``; a workload where any seed missed
    the target (or failed) counts as not solved by that method.
    """
    from effbench.stats import performance_profile

    rows = frame.filter((pl.col("metric") == cost) & (pl.col("seed") >= 0))
    if rows.is_empty():
        return pl.DataFrame()
    where = ["point_key", *(c for c in ("dtype", "device", "hardware") if c in rows.columns)]
    value = pl.col("value")
    if "status" in rows.columns:
        value = pl.when(pl.col("status") == "ok").then(pl.col("value"))  # a failed seed is a miss
    per_case = rows.with_columns(value.alias("value")).group_by(["task", *where, "method", "impl"]).agg(
        pl.col("value").median().alias("cost"), pl.col("value").null_count().alias("missed")
    )
    out = []
    for (task,), part in per_case.sort("task").group_by(["task"], maintain_order=True):
        costs: dict[str, dict[str, float | None]] = {}
        for r in part.iter_rows(named=True):
            workload = " ".join(str(r[c]) for c in where)
            costs.setdefault(workload, {})[f"{r['method']}/{r['impl']}"] = None if r["missed"] else r["cost"]
        for m, values in performance_profile(costs, list(taus)).items():
            out += [{"task": task, "method": m, "tau": tau, "rho": rho, "workloads": len(costs)}
                    for tau, rho in zip(taus, values, strict=True)]
    return pl.DataFrame(out)


# --------------------------------------------------------------------------- comparing two runs


def task_info(db: str | Path = DEFAULT_DB) -> pl.DataFrame:
    """Each task's baseline (method and impl), compared metrics (JSON) and the targets' provenance."""
    with Store(db, read_only=True) as store:
        return store.query("SELECT * FROM tasks ORDER BY task")



def point_size(point_json: str | None, sizes: str | list[str] | None = None) -> float:
    """A point's problem size: the product of its task's declared size parameters (``sizes``: a JSON list or a
    list; a name twice counts squared), else a proxy, the product of the point's positive integer values (N, D,
    V, batch, steps, ...; fractions and coefficients such as z_loss are floats and stay out)."""
    try:
        point = json.loads(point_json or "{}")
        names = json.loads(sizes) if isinstance(sizes, str) else sizes
    except ValueError:
        return 0.0
    if names:
        values = [point.get(name) for name in names]
        return math.prod(float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool))
    size = 1.0
    for value in point.values():
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            size *= float(value)
    return size
