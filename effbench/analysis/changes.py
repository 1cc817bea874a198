"""Run against run: which cases changed beyond the threshold and the measured noise, and the time history."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from effbench.analysis.views import (
    CASE,
    HARDWARE_SQL,
    MEMORY_FLOOR_BYTES,
    MEMORY_METRICS,
    NODE_JOIN,
    HardwareMismatch,
    _hardware_sql,
)
from effbench.rows import TIMED_GRIDS
from effbench.store import DEFAULT_DB, Store

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
