"""Workload verdicts: every method against its task's baseline across seeds, with corrected p-values."""

from __future__ import annotations

import json

import polars as pl

from effbench.analysis.views import performance_profiles, workload_summary

NOT_RUN = ("skipped", "unavailable")
# Differences smaller than these are never significant (seeds that agree to within them tie): a step of
# training, a millisecond, 1e-4 of an accuracy, a loss or an order of magnitude of suboptimality.
RESOLUTION = {"steps_to_target": 1.0, "time_to_target_s": 1e-3, "final_metric": 1e-4, "final_loss": 1e-4}


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
    # a missed target counts as infinitely many steps: the median difference is then no number to print
    delta = pl.when(pl.col("delta").is_finite()).then(pl.col("delta").round_sig_figs(4).cast(pl.String)).otherwise(
        pl.lit("none (a median seed missed the target)"))
    return table.with_columns(pl.format(
        "Mann-Whitney U vs {} over {} vs {} seeds ({} vs {} failed or missed the target): median difference {}, "
        "p {}, {}-adjusted {}",
        "baseline", "seeds", "seeds", "failed", "failed_baseline", delta,
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
