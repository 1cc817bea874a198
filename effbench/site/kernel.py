"""A kernel task's page body: time, memory and roofline figures, the speedup heatmap, the Pareto view, tables."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
import polars as pl

from effbench import analysis
from effbench.site.common import PALETTE, Figure, _figure, _fmt, _ordered_points, _shared_devices, _where, slug

ROOF_DASHES = ("dash", "dot", "dashdot", "longdash")  # one roof per dtype, told apart by its dash


def _roofline_figure(ok: pl.DataFrame, fig_id: str, where: str) -> Figure | None:
    """Achieved TFLOP/s against arithmetic intensity (FLOP per byte of the task's declared work), every case a
    point, under the roof min(peak FLOP/s, bandwidth x intensity) of each dtype; None without FLOPs."""
    needed = ["work_tflop_s", "work_gb_per_s", "peak_gb_per_s", "peak_tflop_s"]
    if not set(needed) <= set(ok.columns):
        return None
    rows = ok.drop_nulls(needed).filter((pl.col("work_tflop_s") > 0) & (pl.col("work_gb_per_s") > 0))
    if rows.is_empty():
        return None
    fig = go.Figure()
    intensity = pl.col("work_tflop_s") * 1e3 / pl.col("work_gb_per_s")
    rows = rows.with_columns(intensity.alias("intensity")).sort(["method", "impl", "dtype", "point_key"])
    for (method, impl, dtype), group in rows.group_by(["method", "impl", "dtype"], maintain_order=True):
        fig.add_trace(go.Scatter(x=group["intensity"].to_list(), y=group["work_tflop_s"].to_list(), mode="markers",
                                 name=f"{method}/{impl} ({dtype})", text=group["point_key"].to_list(),
                                 hovertemplate="%{text}<br>%{x:.3g} FLOP/B, %{y:.3g} TFLOP/s",
                                 marker={"color": PALETTE[len(fig.data) % len(PALETTE)], "size": 9}))
    low, high = rows["intensity"].min() / 4, rows["intensity"].max() * 4
    xs = [low * (high / low) ** (i / 40) for i in range(41)]
    for (dtype,), group in rows.group_by(["dtype"], maintain_order=True):
        bandwidth, peak = group["peak_gb_per_s"].max(), group["peak_tflop_s"].max()
        fig.add_trace(go.Scatter(x=xs, y=[min(peak, bandwidth * x / 1e3) for x in xs], mode="lines",
                                 name=f"roof ({dtype}): {bandwidth:.3g} GB/s, {peak:.3g} TFLOP/s",
                                 line={"color": "#444", "dash": ROOF_DASHES[len(fig.data) % len(ROOF_DASHES)]}))
    fig.update_layout(xaxis_type="log", yaxis_type="log", legend={"orientation": "h", "y": -0.35},
                      xaxis_title="arithmetic intensity (FLOP per byte of the declared work)",
                      yaxis_title="achieved TFLOP/s (higher is better)", yaxis={"automargin": True})
    return _figure(fig, fig_id, f"roofline: each case's achieved rate under the device's ceilings [{where}]", 480)


def _kernel_figures(summary: pl.DataFrame, frame: pl.DataFrame, prefix: str) -> list[Figure]:
    figures: list[Figure] = []
    shared = _shared_devices(summary)
    for n, ((device, hardware), by_device) in enumerate(summary.group_by(["device", "hardware"],
                                                                          maintain_order=True)):
        gpu = by_device["gpu_name"].drop_nulls().first() if "gpu_name" in by_device.columns else None
        where = _where(device, hardware, gpu, shared)
        order = _ordered_points(by_device)
        ok = by_device.filter(pl.col("status").is_in(["ok", "wrong"]))
        for metric, label in (("time_ms", "time (ms, median of seed 0's samples)"),
                              ("peak_mem_bytes", "peak memory above the inputs (bytes)")):
            fig = go.Figure()
            for (method, impl, dtype), group in ok.group_by(["method", "impl", "dtype"], maintain_order=True):
                values = dict(zip(group["point_key"], group[metric], strict=True))
                fig.add_trace(go.Scatter(x=order, y=[values.get(p) for p in order], mode="lines+markers",
                                         name=f"{method}/{impl} ({device}, {dtype})",
                                         line={"color": PALETTE[len(fig.data) % len(PALETTE)]}))
            fig.update_layout(yaxis_title=label, yaxis_type="log", xaxis_title="grid point (by problem size)",
                              legend={"orientation": "h", "y": -0.35}, yaxis={"automargin": True},
                              **({"yaxis_exponentformat": "SI", "yaxis_ticksuffix": "B"}
                                 if metric == "peak_mem_bytes" else {}))
            figures.append(_figure(fig, f"{prefix}-{n}-{metric}", f"{label} vs problem size [{where}]", 480))
        # speedup over the reference as a heatmap: rows = method/impl/dtype, columns = points
        speed = ok.filter(pl.col("speedup").is_not_null() & (pl.col("impl") != "reference"))
        if not speed.is_empty():
            labels = sorted({f"{m}/{i} ({d})" for m, i, d in speed.select("method", "impl", "dtype").iter_rows()})
            cells = {(f"{m}/{i} ({d})", p): s for m, i, d, p, s in
                     speed.select("method", "impl", "dtype", "point_key", "speedup").iter_rows()}
            z = [[math.log2(cells[(lab, p)]) if cells.get((lab, p)) else None for p in order] for lab in labels]
            text = [[f"{cells[(lab, p)]:.2f}x" if cells.get((lab, p)) else "" for p in order] for lab in labels]
            fig = go.Figure(go.Heatmap(z=z, x=order, y=labels, text=text, texttemplate="%{text}", zmid=0,
                                       colorscale="RdBu", colorbar={"title": "log2 speedup"}))
            fig.update_layout(xaxis_title="grid point", yaxis={"automargin": True})
            figures.append(_figure(fig, f"{prefix}-{n}-heatmap", f"speedup over the reference [{where}]",
                                   max(300, 40 * len(labels) + 160)))
        roof = _roofline_figure(ok, f"{prefix}-{n}-roofline", where)
        if roof is not None:
            figures.append(roof)
        # time vs memory at the largest point, Pareto front marked
        if order:
            largest = ok.filter(pl.col("point_key") == order[-1]).drop_nulls(["time_ms", "peak_mem_bytes"])
            if not largest.is_empty():
                pts = list(largest.select("method", "impl", "dtype", "time_ms", "peak_mem_bytes").iter_rows())
                front = {i for i, a in enumerate(pts) if not any(
                    b[3] <= a[3] and b[4] <= a[4] and (b[3] < a[3] or b[4] < a[4]) for b in pts)}
                fig = go.Figure()
                for flag, name in ((True, "Pareto-optimal"), (False, "dominated")):
                    chosen = [p for i, p in enumerate(pts) if (i in front) == flag]
                    fig.add_trace(go.Scatter(
                        x=[p[3] for p in chosen], y=[max(p[4], 1.0) for p in chosen], mode="markers+text",
                        text=[f"{p[0]}/{p[1]} ({p[2]})" for p in chosen], textposition="top center", name=name,
                        marker={"size": 11 if flag else 8}))
                fig.update_layout(xaxis_title="time (ms)", yaxis_title="peak memory (bytes)", xaxis_type="log",
                                  yaxis_type="log", yaxis_exponentformat="SI", yaxis_ticksuffix="B",
                                  yaxis={"automargin": True})
                figures.append(_figure(fig, f"{prefix}-{n}-pareto",
                                       f"time vs memory at the largest point {order[-1]} [{where}]"))
        # throughput metrics: the convention travels in the unit
        rates = frame.filter((pl.col("device") == device) & (pl.col("hardware") == hardware) & (pl.col("seed") == 0)
                             & pl.col("unit").is_not_null()
                             & (pl.col("unit").str.contains("TFLOP/s") | pl.col("unit").str.contains("GB/s"))
                             & pl.col("value").is_not_null())
        for (metric, unit), group in rates.group_by(["metric", "unit"], maintain_order=True):
            fig = go.Figure()
            for (method, impl, dtype), g in group.group_by(["method", "impl", "dtype"], maintain_order=True):
                values = dict(zip(g["point_key"], g["value"], strict=True))
                fig.add_trace(go.Scatter(x=order, y=[values.get(p) for p in order], mode="lines+markers",
                                         name=f"{method}/{impl} ({device}, {dtype})",
                                         line={"color": PALETTE[len(fig.data) % len(PALETTE)]}))
            fig.update_layout(yaxis_title=f"{metric} [{unit}]", xaxis_title="grid point",
                              legend={"orientation": "h", "y": -0.35})
            figures.append(_figure(fig, f"{prefix}-{n}-{slug(metric)}", f"{metric}, {unit} [{where}]", 480))
    return figures


def _kernel_body(frame: pl.DataFrame, prefix: str, with_figures: bool = True) -> dict[str, Any]:
    summary = analysis.speedups(frame)
    if summary.is_empty():
        return {"figures": [], "tables": []}
    errors = frame.filter(pl.col("metric").is_in(["rel_error", "naive_rel_error"]) & (pl.col("seed") >= 0))
    worst = (errors.group_by([*analysis.CASE, "metric"]).agg(pl.col("value").max())
             .pivot(on="metric", index=analysis.CASE, values="value"))
    for column in ("rel_error", "naive_rel_error"):
        if column not in worst.columns:
            worst = worst.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    checked = summary.join(worst, on=analysis.CASE, how="left", suffix="_worst")
    shared = _shared_devices(summary)
    error_rows = [
        {"method": r["method"], "impl": r["impl"], "point": r["point_key"], "dtype": r["dtype"],
         "device": _where(r["device"], r["hardware"], r["gpu_name"], shared), "status": r["status"],
         "worst rel_error over seeds": _fmt(r["rel_error"]), "naive (same dtype)": _fmt(r["naive_rel_error"]),
         "check": "FAIL" if r["status"] == "wrong" else "pass" if r["status"] == "ok" else r["status"]}
        for r in checked.filter(pl.col("status").is_in(["ok", "wrong"])).iter_rows(named=True)
    ]
    perf_rows = [
        {"method": r["method"], "impl": r["impl"], "point": r["point_key"], "dtype": r["dtype"],
         "device": _where(r["device"], r["hardware"], r["gpu_name"], shared), "status": r["status"],
         "time": _fmt(r["time_ms"], "ms"),
         # of the time the device's memory and arithmetic allow for the task's declared work (higher is better)
         "roofline": _fmt(r["roofline_fraction"]),
         "speedup": _fmt(r["speedup"]) + ("×" if r["speedup"] is not None else ""),
         "memory": _fmt(r["peak_mem_bytes"], "bytes"),
         "memory saving": _fmt(r["memory_ratio"]) + ("×" if r["memory_ratio"] is not None else ""),
         "message": r["message"] or ""}
        for r in summary.iter_rows(named=True)
    ]
    return {
        "figures": _kernel_figures(summary, frame, prefix) if with_figures else [],
        "tables": [
            {"title": "numerical check: worst error over seeds against the float64 reference "
                      "(FAIL = wrong: NaN/Inf or beyond twice the naive same-dtype error plus the tolerance)",
             "columns": list(error_rows[0]) if error_rows else [], "rows": error_rows},
            {"title": "time and memory (seed 0); roofline = the declared work's time bound on this device / the "
                      "time (1 = as fast as the device allows; higher is better); speedup and memory saving over "
                      "the reference",
             "columns": list(perf_rows[0]) if perf_rows else [], "rows": perf_rows},
        ],
    }
