"""A kernel task's page body: the leaderboard, one view per figure (time, forward time, memory, speedup,
roofline, time against memory, rates) with a selector over devices, dtypes and (where a figure would hold too
many traces) methods, and the full tables folded away."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
import polars as pl

from effbench import analysis
from effbench.metrics import resolve
from effbench.site.advice import _scope, kernel_advice
from effbench.site.common import (
    MAX_TRACES,
    Context,
    Figure,
    _figure,
    _fmt,
    _shared_devices,
    _where,
    byte_axis,
    slug,
    time_axis,
    view,
)
from effbench.site.leaderboard import kernel_leaderboards
from effbench.site.tables import Cell, header

ROOF_DASHES = ("dash", "dot", "dashdot", "longdash")  # one roof per dtype, told apart by its dash


def _wheres(summary: pl.DataFrame, named: frozenset[str] = frozenset()) -> dict[tuple[str, str], str]:
    shared = _shared_devices(summary) | named
    out = {}
    for r in summary.select("device", "hardware", "gpu_name").unique(subset=["device", "hardware"],
                                                                    keep="first", maintain_order=True).iter_rows():
        out[(r[0], r[1])] = _where(r[0], r[1], r[2], shared)
    return out


def _groups(rows: pl.DataFrame, by_method: bool) -> list[tuple[str, pl.DataFrame]]:
    """("", rows), or one (method, its rows) per method where the figure would hold too many traces."""
    traces = rows.select("method", "impl", "dtype").unique().height
    if not by_method or traces <= MAX_TRACES:
        return [("", rows)]
    return [(m, g) for (m,), g in rows.sort("method").group_by(["method"], maintain_order=True)]


def _roofline_figure(ok: pl.DataFrame, fig_id: str, where: str, ctx: Context) -> Figure | None:
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
                                 name=f"{method}/{impl} ({group['device'][0]}, {dtype})",
                                 text=[ctx.label(k) for k in group["point_key"]],
                                 hovertemplate="%{text}<br>%{x:.3g} FLOP/B, %{y:.3g} TFLOP/s",
                                 marker=ctx.styles.marker(method, impl, 9)))
    low, high = rows["intensity"].min() / 4, rows["intensity"].max() * 4
    xs = [low * (high / low) ** (i / 40) for i in range(41)]
    for n, ((dtype,), group) in enumerate(rows.group_by(["dtype"], maintain_order=True)):
        bandwidth, peak = group["peak_gb_per_s"].max(), group["peak_tflop_s"].max()
        fig.add_trace(go.Scatter(x=xs, y=[min(peak, bandwidth * x / 1e3) for x in xs], mode="lines",
                                 name=f"roof ({dtype}): {bandwidth:.3g} GB/s, {peak:.3g} TFLOP/s",
                                 line={"color": "#000000", "dash": ROOF_DASHES[n % len(ROOF_DASHES)]}))
    fig.update_layout(xaxis_type="log", yaxis_type="log",
                      xaxis_title="arithmetic intensity [FLOP per byte of the declared work]",
                      yaxis_title=header(ctx.declared.get("work_tflop_s"), "work_tflop_s", "achieved rate"),
                      yaxis={"automargin": True})
    return _figure(fig, fig_id, f"roofline: each case's achieved rate under the device's ceilings [{where}]", 480)


def _line_figure(rows: pl.DataFrame, column: str, fig_id: str, title: str, axis_title: str, ctx: Context,
                 kind: str) -> Figure:
    """``column`` of every (method, impl, dtype) against the points in size order (x: their short labels)."""
    order = ctx.ordered(rows["point_key"])
    fig = go.Figure()
    for (method, impl, dtype), group in rows.sort(["method", "impl", "dtype"]).group_by(
            ["method", "impl", "dtype"], maintain_order=True):
        values = dict(zip(group["point_key"], group[column], strict=True))
        ys = [values.get(p) for p in order]
        if kind == "ms":  # plotted in seconds: the axis reads 2ms, 500µs, 1.5s
            ys = [None if y is None else y / 1000 for y in ys]
        fig.add_trace(go.Scatter(
            x=[ctx.label(p) for p in order], y=ys, mode="lines+markers",
            name=f"{method}/{impl} ({group['device'][0]}, {dtype})",
            line=ctx.styles.line(method, impl), marker=ctx.styles.marker(method, impl),
            text=[_fmt(values.get(p), kind) for p in order], customdata=order,
            hovertemplate="%{customdata}<br>%{text}<extra>" + f"{method}/{impl}" + "</extra>"))
    axis = byte_axis(rows[column].to_list()) if kind == "bytes" else time_axis() if kind == "ms" else {
        "type": "log", "automargin": True}
    fig.update_layout(yaxis={**axis, "title": axis_title}, xaxis_title="grid point (by declared problem size)",
                      xaxis={"automargin": True, "type": "category"})
    return _figure(fig, fig_id, title, 480)


def _kernel_views(summary: pl.DataFrame, frame: pl.DataFrame, prefix: str, ctx: Context) -> list[dict[str, Any]]:
    wheres = _wheres(summary, ctx.named_hardware)
    ok = summary.filter(pl.col("status").is_in(["ok", "wrong"]))
    fwd = frame.filter((pl.col("metric") == "time_fwd_ms") & (pl.col("seed") == 0) & pl.col("value").is_not_null()
                       & (pl.col("status") == "ok")).select([*analysis.CASE, pl.col("value").alias("time_fwd_ms")])
    lines: dict[str, list[dict[str, Any]]] = {"time_ms": [], "time_fwd_ms": [], "peak_mem_bytes": []}
    heat, roofs, paretos = [], [], []
    n = 0
    for (device, hardware, dtype), part in ok.sort(["device", "hardware", "dtype"]).group_by(
            ["device", "hardware", "dtype"], maintain_order=True):
        where = wheres.get((device, hardware), device)
        facets = {"machine": where, "dtype": dtype}  # what the page-wide selectors filter on
        for method, rows in _groups(part, by_method=True):
            n += 1
            label = f"{where}, {dtype}" + (f", {method}" if method else "")
            for column, what, kind in (("time_ms", "time", "ms"), ("peak_mem_bytes", "peak memory", "bytes")):
                axis = header(ctx.declared.get(column), column, what, "s" if kind == "ms" else None)
                lines[column].append({"label": label, "title": "", "facets": facets, "figure": _line_figure(
                    rows.drop_nulls(column), column, f"{prefix}-{n}-{column}", f"{what} vs problem size [{label}]",
                    axis, ctx, kind)})
            mine = fwd.join(rows.select(analysis.CASE), on=analysis.CASE, how="inner")
            if not mine.is_empty():
                axis = header(resolve("time_fwd_ms", ctx.declared), "time_fwd_ms", "forward-only time", "s")
                lines["time_fwd_ms"].append({"label": label, "title": "", "facets": facets, "figure": _line_figure(
                    mine, "time_fwd_ms", f"{prefix}-{n}-fwd", f"forward-only time vs problem size [{label}]", axis,
                    ctx, "ms")})
            speed = rows.filter(pl.col("speedup").is_not_null() & (pl.col("impl") != "reference"))
            if not speed.is_empty():
                order = ctx.ordered(rows["point_key"])
                names = sorted({f"{m}/{i}" for m, i in speed.select("method", "impl").iter_rows()})
                cells = {(f"{m}/{i}", p): s for m, i, p, s in
                         speed.select("method", "impl", "point_key", "speedup").iter_rows()}
                z = [[math.log2(cells[(lab, p)]) if cells.get((lab, p)) else None for p in order] for lab in names]
                text = [[f"{cells[(lab, p)]:.2f}×" if cells.get((lab, p)) else "" for p in order] for lab in names]
                fig = go.Figure(go.Heatmap(z=z, x=[ctx.label(p) for p in order], y=names, text=text,
                                           texttemplate="%{text}", zmid=0, colorscale="RdBu",
                                           colorbar={"title": "log2 speedup (>0: faster)"}))
                fig.update_layout(xaxis_title="grid point (by declared problem size)", yaxis={"automargin": True},
                                  xaxis={"automargin": True, "type": "category"})
                heat.append({"label": label, "title": "", "facets": facets, "figure": _figure(
                    fig, f"{prefix}-{n}-heatmap", f"speedup over the method's reference [{label}]",
                    max(320, 28 * len(names) + 160))})
        roof = _roofline_figure(part, f"{prefix}-{n}-roofline", f"{where}, {dtype}", ctx)
        if roof is not None:
            roofs.append({"label": f"{where}, {dtype}", "title": "", "facets": facets, "figure": roof})
        order = ctx.ordered(part["point_key"])
        largest = part.filter(pl.col("point_key") == order[-1]).drop_nulls(["time_ms", "peak_mem_bytes"]) if order \
            else part.clear()
        if not largest.is_empty():
            pts = list(largest.sort(["method", "impl"]).select("method", "impl", "time_ms", "peak_mem_bytes")
                       .iter_rows())
            named = f"({device}, {dtype})"
            front = {i for i, a in enumerate(pts) if not any(
                b[2] <= a[2] and b[3] <= a[3] and (b[2] < a[2] or b[3] < a[3]) for b in pts)}
            fig = go.Figure()
            for i, (method, impl, ms, mem) in enumerate(pts):
                marker = ctx.styles.marker(method, impl, 13 if i in front else 8)
                fig.add_trace(go.Scatter(x=[ms / 1000], y=[max(mem, 1.0)], mode="markers",
                                         name=f"{method}/{impl} {named}" + (" Pareto-optimal" if i in front else ""),
                                         marker=marker, hovertemplate=f"{method}/{impl}<br>{_fmt(ms, 'ms')}, "
                                         f"{_fmt(mem, 'bytes')}<extra></extra>"))
            time_title = header(ctx.declared.get("time_ms"), "time_ms", "time", "s")
            fig.update_layout(xaxis={**time_axis(), "title": time_title},
                              yaxis={**byte_axis([p[3] for p in pts]),
                                     "title": header(ctx.declared.get("peak_mem_bytes"), "peak_mem_bytes",
                                                     "peak memory")})
            paretos.append({"label": f"{where}, {dtype}", "title": order[-1], "facets": facets, "figure": _figure(
                fig, f"{prefix}-{n}-pareto", f"time vs memory at the largest point, {ctx.label(order[-1])} "
                f"[{where}, {dtype}]; large markers: Pareto-optimal", 480)})
    rate_options = []
    rates = frame.filter((pl.col("seed") == 0) & (pl.col("status") == "ok") & pl.col("unit").is_not_null()
                         & (pl.col("unit").str.contains("TFLOP/s") | pl.col("unit").str.contains("GB/s"))
                         & ~pl.col("metric").str.starts_with("peak_") & pl.col("value").is_not_null())
    for (metric, device, hardware, dtype), group in rates.sort(["metric", "device", "hardware", "dtype"]).group_by(
            ["metric", "device", "hardware", "dtype"], maintain_order=True):
        where = wheres.get((device, hardware), device)
        for method, rows in _groups(group.rename({"value": "rate"}), by_method=True):
            n += 1
            label = f"{metric}, {where}, {dtype}" + (f", {method}" if method else "")
            axis = header(resolve(metric, ctx.declared), metric)
            rate_options.append({"label": label, "title": "", "facets": {"machine": where, "dtype": dtype},
                                 "figure": _line_figure(
                rows, "rate", f"{prefix}-{n}-{slug(metric)}", f"{metric} [{label}]", axis, ctx, "")})
    return [v for v in (
        view(f"{prefix}-time", "Time against problem size", lines["time_ms"]),
        view(f"{prefix}-fwd", "Forward-only time against problem size (the forward pass alone)",
             lines["time_fwd_ms"]),
        view(f"{prefix}-memory", "Peak memory against problem size", lines["peak_mem_bytes"]),
        view(f"{prefix}-speedup", "Speedup over each method's reference implementation", heat),
        view(f"{prefix}-pareto", "Time against memory at the largest point", paretos),
        view(f"{prefix}-roofline", "Roofline", roofs),
        view(f"{prefix}-rates", "Throughput (the FLOP or byte convention is in the metric's name)", rate_options),
    ) if v is not None]


def _kernel_body(frame: pl.DataFrame, prefix: str, ctx: Context, with_figures: bool = True) -> dict[str, Any]:
    summary = analysis.speedups(frame)
    if summary.is_empty():
        return {"views": [], "tables": [], "leaderboard": None}
    errors = frame.filter(pl.col("metric").is_in(["rel_error", "naive_rel_error"]) & (pl.col("seed") >= 0))
    worst = (errors.group_by([*analysis.CASE, "metric"]).agg(pl.col("value").max())
             .pivot(on="metric", index=analysis.CASE, values="value", sort_columns=True))
    for column in ("rel_error", "naive_rel_error"):
        if column not in worst.columns:
            worst = worst.with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    checked = summary.join(worst, on=analysis.CASE, how="left", suffix="_worst").sort(analysis.CASE)
    wheres = _wheres(summary, ctx.named_hardware)

    def point(key: str) -> Cell:
        return Cell(ctx.label(key), ctx.order.index(key) if key in ctx.order else None, key, key)

    err = ctx.declared.get("rel_error")
    error_rows = [
        {"method": r["method"], "impl": r["impl"], "point": point(r["point_key"]), "dtype": r["dtype"],
         "device": wheres.get((r["device"], r["hardware"]), r["device"]), "status": r["status"],
         header(err, "rel_error", "worst rel_error over seeds"): Cell(_fmt(r["rel_error"]), r["rel_error"]),
         header(err, "naive_rel_error", "naive (same dtype)"): Cell(_fmt(r["naive_rel_error"]), r["naive_rel_error"]),
         "check": "FAIL" if r["status"] == "wrong" else "pass" if r["status"] == "ok" else r["status"]}
        for r in checked.filter(pl.col("status").is_in(["ok", "wrong"])).iter_rows(named=True)
    ]
    boards = kernel_leaderboards(frame, summary, ctx.declared, ctx.order, ctx.labels, wheres, ctx.size)
    return {
        "leaderboard": view(f"{prefix}-leaderboard", "Leaderboard", boards, "device, dtype, point"),
        "views": _kernel_views(summary, frame, prefix, ctx) if with_figures else [],
        "advice": kernel_advice(summary, ctx) + [_scope(frame, ctx)],
        "tables": [
            {"title": "numerical check: worst error over seeds against the float64 reference "
                      "(FAIL = wrong: NaN/Inf or beyond twice the naive same-dtype error plus the tolerance)",
             "columns": list(error_rows[0]) if error_rows else [], "rows": error_rows},
        ],
    }
