"""Polars views over the store for notebooks, scripts and the site (no SQL needed).

Example::

    from effbench.analysis import open_results, kernel_summary
    frame = open_results("results/effbench.duckdb")   # every result row with its run's provenance
    kernel_summary(frame)                              # one row per case: time, memory, worst error
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl

from effbench.rows import TIMED_GRIDS
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


class HardwareMismatch(ValueError):
    """Two runs measured on different hardware were to be compared: their ratio would measure the machines."""


def open_results(db: str | Path = DEFAULT_DB, latest: bool = True) -> pl.DataFrame:
    """Result rows joined with run provenance (``grid`` included); ``latest`` keeps each case's newest run only."""
    with Store(db, read_only=True) as store:
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

# The stated rule (``changes``): a case's metric changed when the ratio head/base is beyond
# ``threshold`` (either way) *and* beyond the measured noise: with at least 5 raw timing samples
# on each side, a two-sided Mann-Whitney U test at ``alpha``; with fewer, the two runs' p20-p80
# timing intervals must not overlap; memory must also move by more than a floor (MEMORY_FLOOR_BYTES);
# without either (workload metrics) the ratio alone.
# Lower is better for every compared metric; a case that was ok and no longer is (wrong, error,
# oom, timeout) is a regression whatever its numbers.
COMPARED = ("time_ms", "peak_mem_bytes")
MIN_SAMPLES = 5
SPREAD = {"time_ms": ("time_p20_ms", "time_p80_ms")}  # the interval a metric's noise is read from
# Memory is measured once per case, so its noise model is a floor: a change smaller than this is never a change.
# CPU: the resident set moves by whole pages and the allocator's arenas (~1 MB between identical runs, seen);
# CUDA: the caching allocator rounds large blocks to 2 MiB.
MEMORY_FLOOR_BYTES = {"cpu": 4 << 20, "cuda": 2 << 20}
MEMORY_METRICS = ("peak_mem_bytes", "peak_mem_abs_bytes", "peak_mem_fwd_bytes", "state_bytes")


def resolve_runs(db: str | Path, ref: str) -> list[str]:
    """Run ids named by ``ref``: a run id, or a git commit (or a prefix of 7+ hex digits) of runs."""
    with Store(db, read_only=True) as store:
        exact = store.query("SELECT run_id FROM runs WHERE run_id = ?", [ref])
        if not exact.is_empty():
            return exact["run_id"].to_list()
        if len(ref) >= 7 and all(c in "0123456789abcdef" for c in ref.lower()):
            by_commit = store.query(
                "SELECT run_id FROM runs WHERE starts_with(lower(git_commit), ?) ORDER BY started_at", [ref.lower()])
            if not by_commit.is_empty():
                return by_commit["run_id"].to_list()
    raise KeyError(f"no run or commit {ref!r} in {db}")


def _side(db: str | Path, run_ids: list[str], metrics: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Seed-0 values and statuses of ``run_ids`` (newest run wins per case and hardware), and their raw samples."""
    with Store(db, read_only=True) as store:
        values = store.query(
            f"""
            SELECT r.task, r.method, r.impl, r.point_key, r.dtype, r.device, {HARDWARE_SQL} AS hardware, r.metric,
                   r.value, r.status, r.message, r.run_id, u.grid
            FROM results r JOIN runs u USING (run_id)
            WHERE list_contains(?, r.run_id) AND r.seed = 0 AND list_contains(?, r.metric)
            QUALIFY row_number() OVER (PARTITION BY r.task, r.method, r.impl, r.point_key, r.dtype, r.device,
                                       {HARDWARE_SQL}, r.metric ORDER BY u.started_at DESC, r.run_id DESC) = 1
            """,
            [run_ids, list(metrics)],
        )
        samples = store.query(
            f"SELECT r.task, r.method, r.impl, r.point_key, r.dtype, r.device, {_hardware_sql('n')} AS hardware, "
            f"r.metric, r.run_id, r.value FROM samples r JOIN runs u USING (run_id) {NODE_JOIN} "
            "WHERE list_contains(?, r.run_id) AND r.seed = 0 AND list_contains(?, r.metric)",
            [run_ids, list(metrics)],
        )
    return values, samples


def timed_grid(grid: str | None) -> bool:
    """A run's grid is for timing (asv runs may name several, comma-separated)."""
    return bool(grid) and all(g in TIMED_GRIDS for g in grid.split(","))


def changes(db: str | Path, base: str, head: str, metrics: tuple[str, ...] = COMPARED, threshold: float = 1.10,
            alpha: float = 0.01, judge_untimed: bool = False, across_hardware: bool = False) -> pl.DataFrame:
    """One row per case and metric present in both ``base`` and ``head`` (run ids or commits).

    Cases are matched on the same hardware; when the two sides ran on different hardware this raises
    :class:`HardwareMismatch` naming both, unless ``across_hardware`` (then cases are matched whatever their
    hardware, and the ratios measure the machines as much as the code).

    Columns: the case (``hardware``: head's), ``base_hardware``, ``metric``, ``base``, ``head`` (seed-0 values),
    ``ratio`` (head / base),
    ``p_value`` (Mann-Whitney on raw samples, None without enough), ``base_status``,
    ``head_status`` and ``verdict``: ``regression``, ``improvement``, ``same`` (the rule above),
    ``not compared`` (no value on a side, e.g. a case skipped in both runs) or ``untimed`` (a side ran on a
    grid whose numbers are not for comparison, ``TIMED_GRIDS``: only a status that turns bad counts there;
    ``judge_untimed`` judges them anyway, for tests of the rule).
    """
    from scipy import stats

    if threshold <= 1:
        raise ValueError(f"threshold must be above 1, got {threshold}")
    spread = tuple(m for metric in metrics for m in SPREAD.get(metric, ()))
    base_values, base_samples = _side(db, resolve_runs(db, base), metrics + spread)
    head_values, head_samples = _side(db, resolve_runs(db, head), metrics + spread)
    if base_values.is_empty() or head_values.is_empty():
        return pl.DataFrame()
    base_hw, head_hw = (sorted(set(v["hardware"])) for v in (base_values, head_values))
    if base_hw != head_hw and not across_hardware:
        raise HardwareMismatch(
            f"{base} ran on {' + '.join(base_hw)} but {head} on {' + '.join(head_hw)}: a ratio between them would "
            "compare the hardware, not the code. Compare runs on the same hardware, or pass --across-hardware "
            "(across_hardware=True) to compare them anyway")
    key = [*CASE, "metric"]  # each side's own key, its hardware included
    match = [k for k in key if k != "hardware"] if across_hardware else key
    intervals: dict[tuple, dict[str, float | None]] = {}
    for frame, side in ((base_values, "base"), (head_values, "head")):
        for r in frame.filter(pl.col("metric").is_in(list(spread))).iter_rows(named=True):
            intervals.setdefault((side, *(r[k] for k in CASE)), {})[r["metric"]] = r["value"]
    base_values = base_values.filter(pl.col("metric").is_in(list(metrics)))
    head_values = head_values.filter(pl.col("metric").is_in(list(metrics)))
    joined = base_values.join(head_values, on=match, suffix="_head")
    samples_of: dict[tuple, list[float]] = {}
    for frame, side, values in ((base_samples, "base", base_values), (head_samples, "head", head_values)):
        chosen = {tuple(r[:-1]): r[-1] for r in values.select(*key, "run_id").iter_rows()}
        for r in frame.iter_rows(named=True):
            case = tuple(r[k] for k in key)
            if chosen.get(case) == r["run_id"] and r["value"] is not None:
                samples_of.setdefault((side, *case), []).append(r["value"])
    rows = []
    for r in joined.iter_rows(named=True):
        hardware = r.get("hardware_head", r["hardware"])
        base_case = tuple(r[k] for k in key)
        head_case = tuple(hardware if k == "hardware" else r[k] for k in key)
        before, after = r["value"], r["value_head"]
        ratio = after / before if before and after is not None and before > 0 else None
        drawn = {"base": samples_of.get(("base", *base_case), []), "head": samples_of.get(("head", *head_case), [])}
        p = None
        if len(drawn["base"]) >= MIN_SAMPLES and len(drawn["head"]) >= MIN_SAMPLES:
            p = float(stats.mannwhitneyu(drawn["base"], drawn["head"], alternative="two-sided").pvalue)
        beyond_noise = p < alpha if p is not None else True
        if r["metric"] in MEMORY_METRICS and before is not None and after is not None:
            beyond_noise = abs(after - before) > MEMORY_FLOOR_BYTES.get(r["device"], MEMORY_FLOOR_BYTES["cpu"])
        elif p is None and r["metric"] in SPREAD:
            lo, hi = SPREAD[r["metric"]]
            got = {side: intervals.get((side, *case[:-1]), {}) for side, case in (("base", base_case),
                                                                                   ("head", head_case))}
            b_lo, b_hi, h_lo, h_hi = (got[side].get(m) for side in ("base", "head") for m in (lo, hi))
            if None not in (b_lo, b_hi, h_lo, h_hi):
                beyond_noise = h_lo > b_hi or h_hi < b_lo  # the p20-p80 intervals do not overlap
        verdict = "same" if ratio is not None else "not compared"  # e.g. skipped on both sides
        untimed = not judge_untimed and not (timed_grid(r["grid"]) and timed_grid(r["grid_head"]))
        if r["status"] == "ok" and r["status_head"] in ("wrong", "error", "oom", "timeout"):
            verdict = "regression"
        elif untimed:
            verdict = "untimed"
        elif ratio is not None and beyond_noise:
            if ratio > threshold:
                verdict = "regression"
            elif ratio < 1 / threshold:
                verdict = "improvement"
        rows.append({**{k: r[k] for k in key}, "hardware": hardware, "base_hardware": r["hardware"],
                     "base": before, "head": after, "ratio": ratio, "p_value": p,
                     "base_status": r["status"], "head_status": r["status_head"],
                     "message": r["message_head"] or "", "verdict": verdict})
    return pl.DataFrame(rows, infer_schema_length=None).sort(["verdict", *key])


def time_history(db: str | Path = DEFAULT_DB, metric: str = "time_ms") -> pl.DataFrame:
    """``metric`` of every ok case (seed 0) in every run of a timed grid (``TIMED_GRIDS``: smoke's numbers
    are checks, not timings), with the run's time, commit and hardware and raw samples."""
    sql = f"""
        SELECT r.task, r.method, r.impl, r.point_key, r.dtype, r.device, {HARDWARE_SQL} AS hardware, r.run_id,
               u.started_at, u.git_commit, u.source, r.value,
               (SELECT list(s.value ORDER BY s.idx) FROM samples s
                WHERE s.run_id = r.run_id AND s.task = r.task AND s.method = r.method AND s.impl = r.impl
                  AND s.point_key = r.point_key AND s.dtype = r.dtype AND s.device = r.device
                  AND s.seed = r.seed AND s.metric = r.metric) AS samples
        FROM results r JOIN runs u USING (run_id)
        WHERE r.metric = ? AND r.seed = 0 AND r.status = 'ok' AND r.value IS NOT NULL
          AND list_has_all(?, string_split(u.grid, ','))
        ORDER BY r.task, r.method, r.impl, r.point_key, r.dtype, r.device, hardware, u.started_at, r.run_id
    """
    with Store(db, read_only=True) as store:
        return store.query(sql, [metric, list(TIMED_GRIDS)])


def history_changes(history: pl.DataFrame, threshold: float = 1.10, alpha: float = 0.01) -> pl.DataFrame:
    """Each run of a case against the case's previous run on the same hardware (``CASE`` includes it), by
    ``changes``' rule (ratio and noise)."""
    from scipy import stats

    rows = []
    for _, group in history.group_by(CASE, maintain_order=True):
        previous = None
        for r in group.sort(["started_at", "run_id"]).iter_rows(named=True):
            if previous is not None and previous["value"] > 0:
                ratio = r["value"] / previous["value"]
                a, b = previous["samples"] or [], r["samples"] or []
                p = (float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
                     if len(a) >= MIN_SAMPLES and len(b) >= MIN_SAMPLES else None)
                verdict = "same"
                if p is None or p < alpha:
                    verdict = "regression" if ratio > threshold else "improvement" if ratio < 1 / threshold else "same"
                rows.append({**{k: r[k] for k in CASE}, "run_id": r["run_id"], "previous_run": previous["run_id"],
                             "started_at": r["started_at"], "git_commit": r["git_commit"], "value": r["value"],
                             "ratio": ratio, "p_value": p, "verdict": verdict})
            previous = r
    if not rows:
        return pl.DataFrame(schema={**dict.fromkeys(CASE, pl.Utf8), "run_id": pl.Utf8, "previous_run": pl.Utf8,
                                    "started_at": pl.Datetime, "git_commit": pl.Utf8, "value": pl.Float64,
                                    "ratio": pl.Float64, "p_value": pl.Float64, "verdict": pl.Utf8})
    return pl.DataFrame(rows, infer_schema_length=None)


# --------------------------------------------------------------------------- workload verdicts

# Statuses of cases that did not run: not a failure, not a miss, not a point the method is judged on.
NOT_RUN = ("skipped", "unavailable")
# Differences smaller than these are never significant (seeds that agree to within them tie): a step of
# training, a millisecond, 1e-4 of an accuracy, a loss or an order of magnitude of suboptimality.
RESOLUTION = {"steps_to_target": 1.0, "time_to_target_s": 1e-3, "final_metric": 1e-4, "final_loss": 1e-4}


def task_info(db: str | Path = DEFAULT_DB) -> pl.DataFrame:
    """Each task's baseline (method and impl), compared metrics (JSON) and the targets' provenance."""
    with Store(db, read_only=True) as store:
        return store.query("SELECT * FROM tasks ORDER BY task")


def _seed_value(seed: tuple[str, dict[str, float | None]], metric: str) -> float | None:
    """A seed's value of ``metric``; None (a miss) when the seed failed or the metric has none (target missed)."""
    status, values = seed
    return values.get(metric) if status == "ok" else None


def significance(frame: pl.DataFrame, tasks: pl.DataFrame, correction: str = "bh",
                 alpha: float = 0.05) -> pl.DataFrame:
    """Every workload (method, impl) against its task's baseline (method, impl) at each point, per compared
    metric, over the scored seeds both have (``stats.compare``: a rank test; failed seeds are misses).

    ``p_value`` is the raw p, ``p_adjusted`` the p corrected for the many comparisons of one task and
    metric (``correction``: "bh" Benjamini-Hochberg or "holm"); ``significant`` uses the adjusted p and is
    never true below the metric's ``RESOLUTION``. Computed from stored per-seed rows, so another baseline
    or correction needs no re-run. ``tasks``: ``task_info(db)``."""
    from effbench.stats import adjust, compare

    keys = ["task", "point_key", "dtype", "device", *(["hardware"] if "hardware" in frame.columns else [])]
    info = {r["task"]: r for r in tasks.iter_rows(named=True) if r["kind"] == "workload" and r["baseline"]}
    # a seed that did not run (the method does not apply at the point, or its package is missing) is no
    # evidence either way: it is neither compared nor a miss
    rows = frame.filter(pl.col("task").is_in(list(info)) & (pl.col("seed") >= 0)
                        & ~pl.col("status").is_in(list(NOT_RUN)))
    out: list[dict] = []
    for group, part in rows.group_by(keys, maintain_order=True):
        where = dict(zip(keys, group, strict=True))
        task = info[where["task"]]
        base = (task["baseline"], task["baseline_impl"])
        # per (method, impl): seed -> (status, {metric: value})
        seeds: dict[tuple[str, str], dict[int, tuple[str, dict[str, float | None]]]] = {}
        for r in part.iter_rows(named=True):
            entry = seeds.setdefault((r["method"], r["impl"]), {}).setdefault(r["seed"], (r["status"], {}))
            entry[1][r["metric"]] = r["value"]
        if base not in seeds:
            continue
        for (method, impl), ours in sorted(seeds.items()):
            if (method, impl) == base:
                continue
            common = sorted(set(ours) & set(seeds[base]))
            if len(common) < 2:
                continue
            for metric, higher in json.loads(task["compare"]):
                mine = [_seed_value(ours[s], metric) for s in common]
                theirs = [_seed_value(seeds[base][s], metric) for s in common]
                result = compare(mine, theirs, higher, RESOLUTION.get(metric, 0.0))
                out.append({**where, "method": method, "impl": impl, "metric": metric,
                            "higher_is_better": higher, "baseline": f"{base[0]}/{base[1]}",
                            "seeds": len(common), "failed": result.failed_method,
                            "failed_baseline": result.failed_baseline, "delta": result.delta,
                            "below_resolution": result.below_resolution, "p_value": result.p_value,
                            "better_direction": result.better(higher)})
    if not out:
        return pl.DataFrame()
    table = pl.DataFrame(out)
    families: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(out):
        families.setdefault((r["task"], r["metric"]), []).append(i)
    adjusted = [0.0] * len(out)
    for members in families.values():
        for i, q in zip(members, adjust([out[i]["p_value"] for i in members], correction), strict=True):
            adjusted[i] = q
    name = {"bh": "Benjamini-Hochberg", "holm": "Holm"}[correction]
    table = table.with_columns(pl.Series("p_adjusted", adjusted)).with_columns(
        ((pl.col("p_adjusted") < alpha) & ~pl.col("below_resolution")).alias("significant"),
    ).with_columns(
        (pl.col("significant") & pl.col("better_direction")).alias("better"),
        (pl.col("significant") & ~pl.col("better_direction")).alias("worse"),
    )
    return table.with_columns(pl.format(
        "Mann-Whitney U vs {} over {} vs {} seeds ({} vs {} failed or missed the target): median difference {}, "
        "p {}, {}-adjusted {}",
        "baseline", "seeds", "seeds", "failed", "failed_baseline", pl.col("delta").round_sig_figs(4),
        pl.col("p_value").round_sig_figs(3), pl.lit(name), pl.col("p_adjusted").round_sig_figs(3),
    ).alias("message")).drop("better_direction")


def verdict_table(frame: pl.DataFrame, tasks: pl.DataFrame, task: str, correction: str = "bh") -> pl.DataFrame:
    """One row per (method, impl) of a workload task: the at-a-glance answer. ``points`` it ran (skipped and
    unavailable ones left out), ``solved``
    (every scored seed reached the target; null on a task without targets), rho(1) and rho(2) of its task's
    performance profile (steps to target), on how many points it is significantly better / worse than the
    baseline on each of the task's compared metrics (``<metric>_better``, ``<metric>_worse``, from
    ``significance``), seeds that failed, and its median final metric over points."""
    rows = frame.filter((pl.col("task") == task) & (pl.col("seed") >= 0) & ~pl.col("status").is_in(list(NOT_RUN)))
    if rows.is_empty():
        return pl.DataFrame()
    summary = workload_summary(rows)
    cases = summary.group_by(["method", "impl"]).agg(
        pl.len().alias("points"),
        ((pl.col("seeds_reaching_target") == pl.col("seeds")) & (pl.col("ok_seeds") == pl.col("seeds")))
        .sum().alias("solved"),
        (pl.col("seeds") - pl.col("ok_seeds")).sum().alias("failed_seeds"),
        pl.col("final_metric_mean").median().alias("final_metric_median"),
    )
    profile = performance_profiles(rows, taus=(1.0, 2.0))
    if not profile.is_empty():
        rho = profile.pivot(on="tau", index="method", values="rho")
        rho = rho.rename({c: f"rho({float(c):g})" for c in rho.columns if c != "method"})
        cases = cases.with_columns(pl.format("{}/{}", "method", "impl").alias("_key")).join(
            rho.rename({"method": "_key"}), on="_key", how="left").drop("_key")
    info = tasks.filter(pl.col("task") == task)
    if not info.is_empty() and str(info["target"].item() or "").startswith("none"):
        # no target on this task: nothing to solve, no profile
        cases = cases.with_columns(pl.lit(None, dtype=pl.UInt32).alias("solved")).drop(
            [c for c in cases.columns if c.startswith("rho(")])
    compared = [m for m, _ in json.loads(info["compare"].item())] if not info.is_empty() else []
    verdicts = significance(rows, tasks, correction=correction)
    for metric in compared:
        if verdicts.is_empty() or verdicts.filter(pl.col("metric") == metric).is_empty():
            continue
        counts = verdicts.filter(pl.col("metric") == metric).group_by(["method", "impl"]).agg(
            pl.col("better").sum().alias(f"{metric}_better"), pl.col("worse").sum().alias(f"{metric}_worse"))
        cases = cases.join(counts, on=["method", "impl"], how="left")
    return cases.sort(["solved", "method", "impl"], descending=[True, False, False], nulls_last=True)


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
