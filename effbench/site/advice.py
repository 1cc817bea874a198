""""Which should I use?": per task, in a sentence or three, from the same numbers as its leaderboard.

Kernel tasks: for each method, its fastest correct implementation at the largest point measured, with the
speedup and memory saving over the method's reference. Workload tasks: the methods that solved the most
points, with their performance profile and significant wins and losses against the baseline. Each answer
carries its caveats: which device and hardware measured it, which grid, which sizes; a CPU run says nothing
about a GPU.
"""

from __future__ import annotations

import polars as pl

from effbench.site.common import HISTORY_THRESHOLD, Context, _fmt


def _scope(frame: pl.DataFrame, ctx: Context) -> str:
    devices = sorted(set(frame["device"]))
    hardware = sorted(set(frame["hardware"])) if "hardware" in frame.columns else []
    grids = sorted(set(frame["grid"].drop_nulls())) if "grid" in frame.columns else []
    points = ctx.ordered(frame["point_key"])
    span = (f"{len(points)} point(s), from {ctx.label(points[0])} to {ctx.label(points[-1])}" if len(points) > 1
            else f"one point, {ctx.label(points[0])}" if points else "no points")
    gpu = ("" if any(d.startswith("cuda") for d in devices)
           else "; no GPU result yet: a CPU ranking need not hold on a GPU")
    return (f"Measured on {', '.join(devices)} ({', '.join(hardware)}), grid {', '.join(grids) or '?'}, {span}{gpu}.")


NOISE = HISTORY_THRESHOLD  # a speedup below this is run-to-run noise between two medians


def kernel_advice(summary: pl.DataFrame, ctx: Context) -> list[str]:
    """Per (device, hardware, dtype) and method: the fastest correct impl at the largest point it ran."""
    if summary.is_empty():
        return []
    lines = []
    size = {k: float(v) for k, v in (ctx.size or {}).items()}
    ok = summary.filter((pl.col("status") == "ok") & pl.col("time_ms").is_not_null())
    for (device, hardware, dtype, method), part in ok.sort(["device", "hardware", "dtype", "method"]).group_by(
            ["device", "hardware", "dtype", "method"], maintain_order=True):
        top = max(size.get(k, 0.0) for k in part["point_key"])
        at = part.filter(pl.col("point_key").replace_strict(size, default=0.0, return_dtype=pl.Float64) == top).sort(
            ["time_ms", "impl", "point_key"])
        best = at.row(0, named=True)
        if best["impl"] == "reference":
            verdict = "the reference itself is fastest"
        else:
            memory = ("memory below resolution" if best["memory_ratio"] is None
                      else f"{_fmt(best['memory_ratio'])}× less memory" if best["memory_ratio"] >= 1
                      else f"{_fmt(1 / best['memory_ratio'])}× more memory")
            speed = f"{_fmt(best['speedup'])}× the reference's speed" if best["speedup"] else "no reference to compare"
            if best["speedup"] and best["speedup"] < NOISE:  # a ratio of medians this close to 1 is run-to-run noise
                verdict = (f"no implementation is clearly faster than the reference ({best['impl']}: {speed}, "
                           f"within noise; {memory})")
            else:
                verdict = f"use {best['impl']}: {speed}, {memory}"
        lines.append(f"{method} ({device}, {hardware}, {dtype}, at {ctx.label(best['point_key'])}): {verdict} "
                     f"({_fmt(best['time_ms'], 'ms')}, {at.height} implementation(s) ran there).")
    return lines


def workload_advice(table: pl.DataFrame, baseline: tuple[str | None, str | None], top: int = 3) -> list[str]:
    """The ``top`` methods by points solved, rho(1), then significant wins less losses on the final metric."""
    if table.is_empty():
        return []
    wins = [c for c in table.columns if c.endswith("_better")]
    scored = table.with_columns(
        sum((pl.col(c).fill_null(0) - pl.col(c.removesuffix("_better") + "_worse").fill_null(0)) for c in wins)
        .alias("_net") if wins else pl.lit(0).alias("_net"),
        *([] if "rho(1)" in table.columns else [pl.lit(None, dtype=pl.Float64).alias("rho(1)")]))
    ranked = scored.sort(["solved", "rho(1)", "_net", "method", "impl"], descending=[True, True, True, False, False],
                         nulls_last=True)
    lines = []
    for r in ranked.head(top).iter_rows(named=True):
        name = f"{r['method']}/{r['impl']}" + (" (the baseline)" if (r["method"], r["impl"]) == baseline else "")
        parts = [] if r["solved"] is None else [f"solved {r['solved']}/{r['points']} points",
                                                f"rho(1) {_fmt(r['rho(1)'])}"]
        for c in wins:
            metric = c.removesuffix("_better")
            if r[c] is not None and (r["method"], r["impl"]) != baseline:
                parts.append(f"{metric}: significantly better on {r[c]}, worse on {r[metric + '_worse']} point(s)")
        parts.append(f"{r['failed_seeds']} failed seed(s)")
        lines.append(f"{name}: " + "; ".join(parts) + ".")
    return lines
