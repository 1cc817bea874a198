"""Polars views over the store for notebooks, scripts and the site (no SQL needed).

Example::

    from effbench.analysis import open_results, kernel_summary
    frame = open_results("results/effbench.duckdb")   # every result row with its run's provenance
    kernel_summary(frame)                              # one row per case: time, memory, worst error
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from effbench.store import DEFAULT_DB, Store

KERNEL_COLUMNS = ("time_ms", "peak_mem_bytes", "rel_error")
CASE = ["task", "method", "impl", "point_key", "dtype", "device"]


def open_results(db: str | Path = DEFAULT_DB, latest: bool = True) -> pl.DataFrame:
    """Result rows joined with run provenance; ``latest`` keeps each case's newest run only."""
    with Store(db, read_only=True) as store:
        if latest:
            return store.query("SELECT * FROM latest")
        return store.query("SELECT r.*, u.started_at, u.source, u.gpu_name FROM results r JOIN runs u USING (run_id)")


def runs(db: str | Path = DEFAULT_DB) -> pl.DataFrame:
    """Every run, newest first."""
    with Store(db, read_only=True) as store:
        return store.query("SELECT * FROM runs ORDER BY started_at DESC")


def methods(db: str | Path = DEFAULT_DB) -> pl.DataFrame:
    with Store(db, read_only=True) as store:
        return store.query("SELECT * FROM methods ORDER BY family, task, method")


def curves(db: str | Path = DEFAULT_DB, task: str | None = None) -> pl.DataFrame:
    """Training curves of the newest run of each workload case."""
    sql = """
        SELECT c.* FROM curves c JOIN runs u USING (run_id)
        WHERE (? IS NULL OR c.task = ?)
        QUALIFY dense_rank() OVER (
            PARTITION BY c.task, c.method, c.impl, c.point_key, c.dtype, c.device, c.seed
            ORDER BY u.started_at DESC, c.run_id DESC) = 1
        ORDER BY c.task, c.method, c.impl, c.seed, c.step
    """
    with Store(db, read_only=True) as store:
        return store.query(sql, [task, task])


def case_status(frame: pl.DataFrame) -> pl.DataFrame:
    """One status per case and seed (all rows of a case share it); seed -1 rows are run summaries."""
    return frame.filter(pl.col("seed") >= 0).group_by([*CASE, "seed"]).agg(
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
             pl.col("gpu_name").first(), pl.col("point").first())
    )
    values = rows.group_by([*CASE, "metric"]).agg(pl.col("value").max()).pivot(
        on="metric", index=CASE, values="value"
    )
    for column in KERNEL_COLUMNS:
        if column not in values.columns:
            values = values.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    return status.join(values, on=CASE, how="left").sort(CASE)


def speedups(frame: pl.DataFrame) -> pl.DataFrame:
    """Time of each implementation relative to the method's reference at the same point (>1 = faster)."""
    summary = kernel_summary(frame)
    if summary.is_empty():
        return summary
    ref = summary.filter(pl.col("impl") == "reference").select(
        "task", "method", "point_key", "dtype", "device",
        pl.col("time_ms").alias("ref_time_ms"), pl.col("peak_mem_bytes").alias("ref_mem_bytes"),
    )
    return summary.join(ref, on=["task", "method", "point_key", "dtype", "device"], how="left").with_columns(
        (pl.col("ref_time_ms") / pl.col("time_ms")).alias("speedup"),
        (pl.col("ref_mem_bytes") / pl.col("peak_mem_bytes")).alias("memory_ratio"),
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
    """AlgoPerf-style profile over workloads (task x point x device): rho(tau) per method/impl.

    A method's cost on a workload is the median over seeds of ``cost``; a workload where
    any seed missed the target counts as not solved by that method.
    """
    from effbench.stats import performance_profile

    rows = frame.filter((pl.col("metric") == cost) & (pl.col("seed") >= 0))
    if rows.is_empty():
        return pl.DataFrame()
    per_case = rows.group_by(["task", "point_key", "device", "method", "impl"]).agg(
        pl.col("value").median().alias("cost"), pl.col("value").null_count().alias("missed")
    )
    costs: dict[str, dict[str, float | None]] = {}
    for r in per_case.iter_rows(named=True):
        workload = f"{r['task']} [{r['point_key']}] ({r['device']})"
        costs.setdefault(workload, {})[f"{r['method']}/{r['impl']}"] = None if r["missed"] else r["cost"]
    profile = performance_profile(costs, list(taus))
    return pl.DataFrame(
        [
            {"method": m, "tau": tau, "rho": rho}
            for m, values in profile.items()
            for tau, rho in zip(taus, values, strict=True)
        ]
    )
