"""Static site from the DuckDB file alone: overview, a page per family, task, method, and history.

Everything shown comes from the store (method metadata from its ``methods`` table). Every
string is escaped by Jinja's autoescape, figure data is embedded as JSON with ``<``, ``>``
and ``&`` escaped, and file names are slugs (plus a hash) of the names they come from, so
names and error messages from users' plugins cannot inject markup or paths. plotly.js is
copied once into ``assets/`` so the site works offline; each page embeds only its own data.

Figures never mix devices: each figure is drawn for one device, named in its title, and
every trace names its dtype. Cases that failed, timed out, ran out of memory or were
unavailable appear in each task's status table with their messages.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from effbench import analysis
from effbench.analysis import point_size
from effbench.rows import FAMILIES
from effbench.store import DEFAULT_DB

FAIL_STATUSES = ("wrong", "error", "oom", "timeout")
# 20 distinguishable colours (Tableau's 10, then their light partners): a figure of up to 20 traces never
# gives two of them one colour (the optimizer figures draw 14)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#ffbb78", "#9edae5", "#c49c94", "#f7b6d2",
           "#c7c7c7", "#dbdb8d")
SHOWN_ELSEWHERE = {"final_metric", "final_loss", "steps_to_target", "time_to_target_s"}
# the history rule (the same as `effbench compare`): beyond 1.10x and Mann-Whitney p < 0.01 where
# raw samples allow, the ratio alone otherwise
HISTORY_THRESHOLD = 1.10


@dataclass
class Figure:
    id: str
    title: str
    json: str  # safe to place inside <script type="application/json">


def slug(*parts: str) -> str:
    """A file-name-safe, collision-free name for user-provided strings."""
    text = "-".join(parts)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:60].strip("._") or "x"
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def task_page(task: str) -> str:
    return f"task-{slug(task)}.html"


def method_page(task: str, method: str) -> str:
    return f"method-{slug(task, method)}.html"


def _figure(fig: go.Figure, fig_id: str, title: str, height: int = 420) -> Figure:
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 40, "b": 60}, height=height)
    text = fig.to_json().replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    return Figure(fig_id, title, text)


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value != value:  # NaN
            return "—"
        if kind == "bytes":
            for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
                if abs(value) < 1024 or unit == "TiB":
                    return f"{value:.1f} {unit}" if unit != "B" else f"{value:.0f} B"
                value /= 1024
        if kind == "ms":  # human units: 2.4 s, not 2.4e+03 ms
            return f"{value / 1000:.3g} s" if abs(value) >= 1000 else f"{value:.3g} ms"
        return f"{value:.3g}"
    return str(value)


def _device_label(device: str, gpu_name: str | None) -> str:
    return f"{device} ({gpu_name})" if gpu_name else device


def _shared_devices(frame: pl.DataFrame) -> set[str]:
    """Devices that ran on more than one hardware in ``frame``: their labels name the hardware."""
    if frame.is_empty() or "hardware" not in frame.columns:
        return set()
    counts = frame.group_by("device").agg(pl.col("hardware").n_unique())
    return {device for device, n in counts.iter_rows() if n > 1}


def _where(device: str, hardware: str | None, gpu_name: str | None, shared: set[str]) -> str:
    """``cpu`` or ``cuda (GPU)`` as ever; the hardware named where a device ran on several, so that two
    machines' numbers never read as one's."""
    return f"{device} ({hardware})" if device in shared else _device_label(device, gpu_name)


def _points(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """point_key -> the grid point it names (from the rows' canonical JSON; {} when unreadable)."""
    if frame.is_empty() or "point" not in frame.columns:
        return {}
    points = {}
    for r in frame.select("point_key", "point").unique().iter_rows(named=True):
        try:
            points[r["point_key"]] = json.loads(r["point"] or "{}")
        except ValueError:
            points[r["point_key"]] = {}
    return points


def point_labels(frame: pl.DataFrame) -> dict[str, str]:
    """point_key -> what sets the point apart from the task's others: only the parameters whose values differ
    ("data=digits, schedule=cosine"), the whole key when every point has the same values."""
    points = _points(frame)
    keys = sorted({k for p in points.values() for k in p})
    varying = [k for k in keys if len({json.dumps(p.get(k)) for p in points.values()}) > 1]
    return {pkey: (", ".join(f"{k}={p[k]}" for k in varying if k in p) or pkey) if varying else pkey
            for pkey, p in points.items()}


def _ordered_points(frame: pl.DataFrame) -> list[str]:
    """Point keys by problem size (the task's declared sizes where the rows carry them), then by key."""
    columns = ["point_key", "point", *(["sizes"] if "sizes" in frame.columns else [])]
    pairs = {r["point_key"]: point_size(r["point"], r.get("sizes")) for r in frame.select(columns).unique().iter_rows(
        named=True)}
    return sorted(pairs, key=lambda k: (pairs[k], k))


# --------------------------------------------------------------------------- kernel task pages


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


# --------------------------------------------------------------------------- workload task pages


def _t95(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1)) if n > 1 else math.nan


def _ci(values: list[float]) -> tuple[float, float] | None:
    """Mean and 95% t-interval half-width over seeds (None with fewer than two values)."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, _t95(len(values)) * sd / math.sqrt(len(values))


def _workload_body(frame: pl.DataFrame, db: Path, task: str, prefix: str, verdicts: pl.DataFrame,
                   with_figures: bool = True, info: pl.DataFrame | None = None) -> dict[str, Any]:
    summary = analysis.workload_summary(frame)
    labels = point_labels(frame)
    targets_of = {pkey: float(p["target"]) for pkey, p in _points(frame).items()
                  if isinstance(p.get("target"), int | float) and not isinstance(p.get("target"), bool)}
    figures: list[Figure] = []
    curves = analysis.curves(db, task) if with_figures else pl.DataFrame()
    if not curves.is_empty():
        bands = curves.group_by(["point_key", "device", "method", "impl", "dtype", "step"]).agg(
            pl.col("eval_metric").mean().alias("mean"), pl.col("eval_metric").min().alias("lo"),
            pl.col("eval_metric").max().alias("hi"), pl.len().alias("seeds"),
        ).sort(["point_key", "device", "method", "impl", "dtype", "step"])  # the same order on every build
        for n, ((pkey, device), per_point) in enumerate(bands.group_by(["point_key", "device"], maintain_order=True)):
            fig = go.Figure()
            groups = sorted(per_point.group_by(["method", "impl", "dtype"], maintain_order=True), key=lambda kv: kv[0])
            for c, ((method, impl, dtype), g) in enumerate(groups):
                name = f"{method}/{impl} ({device}, {dtype})"
                color = PALETTE[c % len(PALETTE)]
                steps = g["step"].to_list()
                fig.add_trace(go.Scatter(x=steps + steps[::-1], y=g["hi"].to_list() + g["lo"].to_list()[::-1],
                                         fill="toself", opacity=0.15, line={"width": 0}, fillcolor=color, mode="lines",
                                         hoverinfo="skip", showlegend=False, legendgroup=name, name=f"{name} band"))
                fig.add_trace(go.Scatter(x=steps, y=g["mean"].to_list(), mode="lines", name=name, legendgroup=name,
                                         line={"color": color}))
            target = targets_of.get(pkey)
            if target is not None:  # the fixed target the steps-to-target figures count to
                fig.add_hline(y=target, line={"dash": "dash", "color": "#444"}, annotation_text=f"target {target:g}")
            fig.update_layout(xaxis_title="step", yaxis_title="eval metric (mean; band: min–max over seeds)",
                              legend={"orientation": "h", "y": -0.3}, yaxis={"automargin": True})
            figures.append(_figure(fig, f"{prefix}-curve{n}", f"training curves, {labels.get(pkey, pkey)} [{device}]",
                                   480))
    per_seed = frame.filter(pl.col("metric").is_in(["steps_to_target", "time_to_target_s"]) & (pl.col("seed") >= 0))
    targets = (("steps_to_target", "steps to target"), ("time_to_target_s", "time to target (s)"))
    for metric, label in targets if with_figures else ():
        rows = per_seed.filter(pl.col("metric") == metric)
        if rows["value"].is_null().all():
            continue  # no target on this task, or nobody reached it: the table says which
        for n, ((pkey, device), group) in enumerate(rows.group_by(["point_key", "device"], maintain_order=True)):
            fig = go.Figure()
            names, means, halves, lows, missed = [], [], [], [], []
            for (method, impl, dtype), g in sorted(group.group_by(["method", "impl", "dtype"]), key=lambda kv: kv[0]):
                values = [v for v in g["value"].to_list() if v is not None]
                ci = _ci(values)
                mean = ci[0] if ci else (values[0] if values else None)
                names.append(f"{method}/{impl} ({dtype})")
                means.append(mean)
                halves.append(ci[1] if ci else 0.0)
                # steps and seconds are never negative: the interval's lower arm stops at 0
                lows.append(min(ci[1], mean) if ci and mean is not None else 0.0)
                missed.append(g.height - len(values))
            fig.add_trace(go.Bar(x=names, y=means, error_y={"type": "data", "array": halves, "arrayminus": lows},
                                 text=[f"{m} missed" if m else "" for m in missed], textposition="outside"))
            fig.update_layout(yaxis_title=f"{label}: mean, 95% t-interval over seeds (seeds that missed excluded)")
            figures.append(_figure(fig, f"{prefix}-{metric}{n}", f"{label}, {labels.get(pkey, pkey)} [{device}]"))
    reached = frame.filter((pl.col("metric") == "steps_to_target") & pl.col("value").is_not_null())
    profile = analysis.performance_profiles(frame) if with_figures and not reached.is_empty() else pl.DataFrame()
    if not profile.is_empty():
        fig = go.Figure()
        for (method,), g in profile.group_by(["method"], maintain_order=True):
            fig.add_trace(go.Scatter(x=g["tau"].to_list(), y=g["rho"].to_list(), mode="lines+markers", name=method,
                                     line={"shape": "hv"}))
        fig.update_layout(xaxis_title="tau (steps to target / best method's, per workload)",
                          yaxis_title="fraction of workloads solved within tau", yaxis_range=[0, 1.05])
        figures.append(_figure(fig, f"{prefix}-profile", "performance profile over this task's workloads "
                                                         "(grid points x devices; AlgoPerf-style, steps to target)"))
    sig_rows = [
        {"method": r["method"], "impl": r["impl"], "point": r["point_key"], "device": r["device"],
         "metric": r["metric"], "vs": r["baseline"], "seeds": f"{r['seeds']} ({r['failed']} vs "
         f"{r['failed_baseline']} failed)", "p": _fmt(r["p_value"]), "adjusted p": _fmt(r["p_adjusted"]),
         "verdict": "better" if r["better"] else "worse" if r["worse"] else "not significant",
         "detail": r["message"]}
        for r in verdicts.sort(["point_key", "method", "impl", "metric"]).iter_rows(named=True)
    ] if not verdicts.is_empty() else []
    rows = [
        {"method": r["method"], "impl": r["impl"], "point": r["point_key"], "device": r["device"],
         "seeds ok": f"{r['ok_seeds']}/{r['seeds']}",
         "final metric": f"{_fmt(r['final_metric_mean'])} ± {_fmt(r['final_metric_std'])}",
         "final loss": _fmt(r["final_loss_mean"]),
         "steps to target (median)": _fmt(r["steps_to_target_median"]),
         "time to target (median s)": _fmt(r["time_to_target_s_median"]),
         "seeds reaching target": f"{r['seeds_reaching_target']}/{r['seeds']}"}
        for r in summary.iter_rows(named=True)
    ] if not summary.is_empty() else []
    others = frame.filter((pl.col("seed") >= 0) & pl.col("value").is_not_null()
                          & ~pl.col("metric").is_in(list(SHOWN_ELSEWHERE)))
    other_rows = []
    if not others.is_empty():
        medians = others.group_by([*analysis.CASE, "metric", "unit"]).agg(pl.col("value").median())
        metrics = sorted(set(medians["metric"].to_list()))
        units = dict(medians.select("metric", "unit").unique(subset="metric").iter_rows())
        for case, g in medians.group_by(analysis.CASE, maintain_order=True):
            values = dict(g.select("metric", "value").iter_rows())
            other_rows.append({"method": case[1], "impl": case[2], "point": case[3], "device": case[5],
                               **{m: _fmt(values.get(m), "bytes" if units.get(m) == "bytes" else "") for m in metrics}})
        other_rows.sort(key=lambda r: (r["point"], r["method"], r["impl"]))
    glance = []
    if info is not None and not info.is_empty():
        table = analysis.verdict_table(frame, info, task)
        for r in table.iter_rows(named=True) if not table.is_empty() else ():
            counts = {f"{c.removesuffix('_better').replace('_', ' ')}: better / worse":
                      f"{r[c]} / {r[c.removesuffix('_better') + '_worse']}" if r[c] is not None else "—"
                      for c in table.columns if c.endswith("_better")}
            solved = {} if r["solved"] is None else {"solved": f"{r['solved']}/{r['points']}",
                                                     "rho(1)": _fmt(r.get("rho(1)")), "rho(2)": _fmt(r.get("rho(2)"))}
            glance.append({"method": r["method"], "impl": r["impl"], **solved, **counts,
                           "final metric (median over points)": _fmt(r["final_metric_median"]),
                           "failed seeds": str(r["failed_seeds"])})
    return {
        "figures": figures,
        "tables": [
            {"title": "at a glance: points solved (every seed reached the target), performance profile rho(tau) "
                      "on steps to target, and points where the method is significantly better / worse than the "
                      "baseline (see the significance table)", "columns": list(glance[0]) if glance else [],
             "rows": glance},
            {"title": "per method and grid point (mean ± std over seeds)", "columns": list(rows[0]) if rows else [],
             "rows": rows},
            {"title": "every other metric (median over seeds)", "columns": list(other_rows[0]) if other_rows else [],
             "rows": other_rows},
            {"title": "significance against the task's baseline (Mann-Whitney U over the same scored seeds, failed "
                      "seeds as misses; p adjusted per task and metric by Benjamini-Hochberg, significant below "
                      "0.05 and beyond the metric's resolution)",
             "columns": list(sig_rows[0]) if sig_rows else [], "rows": sig_rows},
        ],
    }


# --------------------------------------------------------------------------- overview pieces


def headline(frame: pl.DataFrame, kind: str, verdicts: pl.DataFrame | None = None) -> list[str]:
    """One sentence per device (kernel) or grid point (workload) saying what wins, with its numbers."""
    lines = []
    if kind == "kernel":
        # Implementations of one method compute one function: compare within a method, never across methods
        # (a sliding-window kernel is not a faster dense attention).
        summary = analysis.speedups(frame)
        if summary.is_empty():
            return lines
        shared = _shared_devices(summary)
        for (device, hardware, dtype, method), group in summary.group_by(["device", "hardware", "dtype", "method"],
                                                                         maintain_order=True):
            order = _ordered_points(group)
            at = group.filter((pl.col("point_key") == order[-1]) & (pl.col("status") == "ok")
                              & pl.col("time_ms").is_not_null())
            if at.is_empty():
                continue
            best = at.sort("time_ms").row(0, named=True)
            where = _where(device, hardware, best["gpu_name"], shared)
            if best["impl"] == "reference":
                verdict = "the reference is its fastest correct implementation"
            else:
                speed = f", {best['speedup']:.2f}x the reference's speed" if best["speedup"] else ""
                memory = f", {best['memory_ratio']:.2f}x less memory" if best["memory_ratio"] else ""
                verdict = f"fastest correct implementation {best['impl']}{speed}{memory}"
            untimed = ("" if analysis.timed_grid(best.get("grid", "cpu")) else
                       f" (grid {best['grid']}: a check that it runs, not a timing to compare)")
            lines.append(f"{method} on {where}, {dtype}, largest point {order[-1]}: {verdict}, "
                         f"{_fmt(best['time_ms'], 'ms')}{untimed}.")
        return lines
    summary = analysis.workload_summary(frame)
    if summary.is_empty():
        return lines
    sig = (verdicts.filter(pl.col("metric") == "final_metric") if verdicts is not None and not verdicts.is_empty()
           else pl.DataFrame())
    flagged = {(r["method"], r["impl"], r["point_key"], r["device"]): r for r in sig.iter_rows(named=True)}
    labels = point_labels(frame)
    for (pkey, device), group in summary.sort("point_key").group_by(["point_key", "device"], maintain_order=True):
        ranked = group.drop_nulls("final_metric_mean").sort(["final_metric_mean", "method", "impl"],
                                                            descending=[True, False, False])
        if ranked.is_empty():
            continue
        best = ranked.row(0, named=True)
        verdict = flagged.get((best["method"], best["impl"], pkey, device))
        against = ""
        if verdict is not None:  # the best is not the baseline: say against what, and whether it holds
            base_method, base_impl = verdict["baseline"].split("/", 1)
            base = group.filter((pl.col("method") == base_method) & (pl.col("impl") == base_impl))
            base_value = _fmt(base["final_metric_mean"].item()) if base.height == 1 else "—"
            against = (f" vs the baseline {verdict['baseline']}'s {base_value}, "
                       + ("significantly better" if verdict["better"] else "not significantly better")
                       + f" over {verdict['seeds']} seeds")
        elif sig.height:
            against = " (the baseline itself)"
        lines.append(f"{device}, {labels.get(pkey, pkey)}: best final metric (higher is better, mean over "
                     f"{best['seeds']} seeds) {best['method']}/{best['impl']} {_fmt(best['final_metric_mean'])}"
                     f"{against}.")
    return lines


def _untimed_grids(rows: pl.DataFrame) -> str:
    """The grids among ``rows`` whose times are checks, not timings (e.g. "smoke"), comma-separated."""
    if rows.is_empty() or "grid" not in rows.columns:
        return ""
    return ", ".join(sorted(g for g in rows["grid"].drop_nulls().unique().to_list() if not analysis.timed_grid(g)))


def coverage(frame: pl.DataFrame, method_frame: pl.DataFrame) -> list[dict[str, str]]:
    """Per task/method/impl: cases by status on each device in the latest results."""
    status = analysis.case_status(frame) if not frame.is_empty() else pl.DataFrame()
    rows = []
    for m in method_frame.iter_rows(named=True):
        for impl in (m["impls"] or "").split(","):
            cells = {}
            if not status.is_empty():
                mine = status.filter((pl.col("task") == m["task"]) & (pl.col("method") == m["method"])
                                     & (pl.col("impl") == impl))
                for (device,), g in mine.group_by(["device"], maintain_order=True):
                    counts = dict(g["status"].value_counts().iter_rows())
                    cells[device] = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
            rows.append({"family": m["family"], "task": m["task"], "method": m["method"], "impl": impl,
                         "cpu": cells.get("cpu", "not run"), "cuda": cells.get("cuda", "not run"),
                         "task_page": task_page(m["task"]), "method_page": method_page(m["task"], m["method"])})
    return rows


def kernel_build_table(builds: pl.DataFrame, task: str, method: str) -> dict[str, Any] | None:
    """The method's Triton kernels as compiled for GPU archs without a GPU (``effbench kernels``), or None."""
    if builds.is_empty():
        return None
    mine = builds.filter(pl.col("methods").fill_null("").str.split(",").list.contains(f"{task}:{method}"))
    if mine.is_empty():
        return None
    columns = ["kernel", "config", "arch", "status", "registers", "spills (B)", "shared (B)", "of limit", "triton"]
    rows = [{"kernel": r["kernel"], "config": r["config"], "arch": r["arch"], "status": r["status"],
             "registers": _fmt(r["registers"]), "spills (B)": _fmt(r["spills"]), "shared (B)": _fmt(r["shared_bytes"]),
             "of limit": "" if r["shared_bytes"] is None else f"{100 * r['shared_bytes'] / r['shared_limit']:.0f}%",
             "triton": r["triton_version"]}
            for r in mine.sort(["kernel", "config", "arch", "triton_version"]).iter_rows(named=True)]
    return {"title": "Kernel builds (compiled for the arch, registers and spills per thread, shared memory per "
                     "block against its limit)", "columns": columns, "rows": rows}


def history(db: Path) -> tuple[list[Figure], list[dict[str, str]]]:
    """time_ms of every case across runs (seed 0), with regressions and improvements marked."""
    rows = analysis.time_history(db)
    if rows.is_empty():
        return [], []
    figures, table = [], []
    marks = analysis.history_changes(rows, HISTORY_THRESHOLD)
    shared = _shared_devices(rows)  # one figure per hardware: a line never joins two machines' numbers
    for n, ((task, device, hardware), group) in enumerate(rows.group_by(["task", "device", "hardware"],
                                                                         maintain_order=True)):
        where = _where(device, hardware, None, shared)
        fig = go.Figure()
        for (method, impl, pkey, dtype), g in group.group_by(["method", "impl", "point_key", "dtype"],
                                                              maintain_order=True):
            if g.height < 2:
                continue
            g = g.sort("started_at")
            fig.add_trace(go.Scatter(x=[str(t) for t in g["started_at"]], y=g["value"].to_list(),
                                     mode="lines+markers", name=f"{method}/{impl} {pkey} ({device}, {dtype})"))
        flagged = marks.filter((pl.col("task") == task) & (pl.col("device") == device)
                               & (pl.col("hardware") == hardware) & (pl.col("verdict") != "same"))
        for verdict, color in (("regression", "red"), ("improvement", "green")):
            f = flagged.filter(pl.col("verdict") == verdict)
            if not f.is_empty():
                fig.add_trace(go.Scatter(x=[str(t) for t in f["started_at"]], y=f["value"].to_list(), mode="markers",
                                         marker={"color": color, "size": 13, "symbol": "circle-open"},
                                         name=f"{verdict}s"))
        if fig.data:
            fig.update_layout(yaxis_type="log", yaxis_title="time (ms)", xaxis_title="run started at",
                              legend={"orientation": "h", "y": -0.35})
            figures.append(_figure(fig, f"history{n}", f"{task} across runs [{where}]", 480))
    for r in marks.filter(pl.col("verdict") != "same").iter_rows(named=True):
        table.append({"verdict": r["verdict"], "task": r["task"], "case": f"{r['method']}/{r['impl']}",
                      "point": r["point_key"], "dtype": r["dtype"],
                      "device": _where(r["device"], r["hardware"], None, shared),
                      "from run": r["previous_run"], "to run": r["run_id"], "commit": r["git_commit"] or "",
                      "ratio": f"{r['ratio']:.3f}x", "p": _fmt(r["p_value"])})
    return figures, table


# --------------------------------------------------------------------------- build


def build(db: str | Path = DEFAULT_DB, out: str | Path = "site") -> Path:
    """Write the site to ``out``; returns the index page's path."""
    db, out = Path(db), Path(out)
    frame = analysis.open_results(db)
    task_frame = analysis.task_info(db)
    if not frame.is_empty() and not task_frame.is_empty() and "sizes" in task_frame.columns:  # declared sizes
        frame = frame.join(task_frame.select("task", "sizes"), on="task", how="left")
    verdicts = analysis.significance(frame, task_frame) if not frame.is_empty() else pl.DataFrame()
    targets = {r["task"]: r["target"] for r in task_frame.iter_rows(named=True)} if not task_frame.is_empty() else {}
    about = ({r["task"]: r.get("description") or "" for r in task_frame.iter_rows(named=True)}
             if not task_frame.is_empty() else {})
    run_frame = analysis.runs(db)
    method_frame = analysis.methods(db)
    builds = analysis.kernel_builds(db)
    out.mkdir(parents=True, exist_ok=True)
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copyfile(plotly_js, assets / "plotly.min.js")
    env = Environment(loader=PackageLoader("effbench", "templates"), autoescape=select_autoescape(["html"]))
    env.globals["family_names"] = FAMILIES  # the navigation
    (assets / "effbench.css").write_text(
        (Path(__file__).parent / "static" / "effbench.css").read_text(encoding="utf-8"), encoding="utf-8"
    )

    def render(name: str, template: str, **context: Any) -> None:
        (out / name).write_text(env.get_template(template).render(**context), encoding="utf-8")

    tasks = sorted(set(frame["task"].to_list() if not frame.is_empty() else []) | set(method_frame["task"].to_list()))
    families, task_infos = [], {}
    def verdicts_of(task: str, method: str | None = None) -> pl.DataFrame:
        if verdicts.is_empty():
            return verdicts
        mine = verdicts.filter(pl.col("task") == task)
        return mine if method is None else mine.filter(pl.col("method") == method)

    for task in tasks:
        task_rows = frame.filter(pl.col("task") == task) if not frame.is_empty() else frame
        kind = "workload" if not task_rows.is_empty() and task_rows.filter(
            pl.col("metric") == "final_metric").height else "kernel"
        counts = (dict(analysis.case_status(task_rows)["status"].value_counts().iter_rows())
                  if not task_rows.is_empty() else {})
        task_infos[task] = {"name": task, "kind": kind, "page": task_page(task), "status": counts,
                            "headline": headline(task_rows, kind, verdicts_of(task)) if not task_rows.is_empty()
                            else [],
                            "target": targets.get(task, "") if kind == "workload" else "",
                            "description": about.get(task, ""),
                            "failures": sum(counts.get(s, 0) for s in FAIL_STATUSES),
                            "untimed": _untimed_grids(task_rows)}
    for family in FAMILIES:
        infos = [task_infos[t] for t in tasks if t.split("/")[0] == family]
        status: dict[str, int] = {}
        for info in infos:
            for s, n in info["status"].items():
                status[s] = status.get(s, 0) + n
        families.append({"name": family, "tasks": infos, "status": status})

    runs = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in run_frame.head(30).iter_rows(named=True)]
    render("index.html", "index.html", page="index", families=families, runs=runs,
           coverage=coverage(frame, method_frame))
    for family in families:
        render(f"{family['name']}.html", "family.html", page=family["name"], family=family)

    for i, task in enumerate(tasks):
        info = task_infos[task]
        task_rows = frame.filter(pl.col("task") == task) if not frame.is_empty() else frame
        if task_rows.is_empty():
            body: dict[str, Any] = {"figures": [], "tables": []}
        elif info["kind"] == "workload":
            body = _workload_body(task_rows, db, task, f"t{i}", verdicts_of(task), info=task_frame)
        else:
            body = _kernel_body(task_rows, f"t{i}")
        problems = []
        if not task_rows.is_empty():
            bad = analysis.case_status(task_rows).filter(pl.col("status") != "ok")
            # one line per case and message, its seeds listed (not one line per seed)
            grouped = bad.with_columns(pl.col("message").fill_null("")).group_by(
                ["status", "method", "impl", "point_key", "dtype", "device", "message"]).agg(
                pl.col("seed").sort()).sort(["status", "method", "impl", "point_key", "dtype", "device", "message"])
            problems = [{"status": r["status"], "method": r["method"], "impl": r["impl"], "point": r["point_key"],
                         "dtype": r["dtype"], "device": r["device"], "seed": ", ".join(map(str, r["seed"])),
                         "message": r["message"]} for r in grouped.iter_rows(named=True)]
        task_methods = [
            {**{k: ("" if v is None else str(v)) for k, v in m.items()}, "page": method_page(task, m["method"])}
            for m in method_frame.filter(pl.col("task") == task).iter_rows(named=True)
        ]
        render(info["page"], "task.html", page=task.split("/")[0], task=info, methods=task_methods,
               problems=problems, **body)
        for m in task_methods:
            mine = task_rows.filter(pl.col("method") == m["method"]) if not task_rows.is_empty() else task_rows
            if mine.is_empty():
                tables: list[dict[str, Any]] = []
            elif info["kind"] == "workload":
                body = _workload_body(mine, db, task, "m", verdicts_of(task, m["method"]), with_figures=False)
                tables = body["tables"]
            else:
                tables = _kernel_body(mine, "m", with_figures=False)["tables"]
            render(m["page"], "method.html", page=task.split("/")[0], task=info, method=m, tables=tables,
                   builds=kernel_build_table(builds, task, m["method"]))

    hist_figures, hist_rows = history(db)
    render("history.html", "history.html", page="history", figures=hist_figures, rows=hist_rows,
           threshold=HISTORY_THRESHOLD)
    return out / "index.html"


def figure_payloads(html: str) -> list[Any]:
    """Parse the figure JSON embedded in a page (for tests)."""
    payloads, marker = [], 'type="application/json">'
    for chunk in html.split(marker)[1:]:
        payloads.append(json.loads(chunk.split("</script>", 1)[0]))
    return payloads
