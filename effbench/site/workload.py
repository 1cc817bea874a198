"""A workload task's page body: verdicts, curves, steps to target with 95% intervals, profiles, tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from effbench import analysis
from effbench.metrics import resolve
from effbench.site.advice import _scope, workload_advice
from effbench.site.common import SHOWN_ELSEWHERE, Context, _figure, _fmt, _points, view
from effbench.site.leaderboard import workload_leaderboards
from effbench.site.tables import Cell, header


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


def _workload_body(frame: pl.DataFrame, db: Path, task: str, prefix: str, verdicts: pl.DataFrame, ctx: Context,
                   with_figures: bool = True, info: pl.DataFrame | None = None) -> dict[str, Any]:
    summary = analysis.workload_summary(frame)
    targets_of = {pkey: float(p["target"]) for pkey, p in _points(frame).items()
                  if isinstance(p.get("target"), int | float) and not isinstance(p.get("target"), bool)}
    multi = frame.select("device", "hardware").unique().height > 1 or ctx.several_machines

    def where(device: str, hardware: str) -> str:
        return f"{device} ({hardware})" if multi else device

    curve_options: list[dict[str, Any]] = []
    curves = analysis.curves(db, task, rows=frame) if with_figures else pl.DataFrame()  # these rows' own runs
    if not curves.is_empty():
        if "hardware" not in curves.columns:  # each case's hardware as its rows carry it (a run may span nodes)
            case = ["run_id", "task", "method", "impl", "point_key", "dtype", "device", "seed"]
            hardware = frame.select(*case, "hardware").unique(subset=case, keep="first", maintain_order=True)
            curves = curves.join(hardware, on=case, how="left").with_columns(pl.col("hardware").fill_null(""))
        bands = curves.group_by(["point_key", "device", "hardware", "method", "impl", "dtype", "step"]).agg(
            pl.col("eval_metric").mean().alias("mean"), pl.col("eval_metric").min().alias("lo"),
            pl.col("eval_metric").max().alias("hi"), pl.len().alias("seeds"),
        )
        rank = {k: n for n, k in enumerate(ctx.order)}
        bands = bands.with_columns(pl.col("point_key").replace_strict(rank, default=len(rank)).alias("_rank")).sort(
            ["_rank", "point_key", "device", "hardware", "method", "impl", "dtype", "step"])
        final = ctx.declared.get("final_metric")
        for n, ((pkey, device, hardware), per_point) in enumerate(
                bands.group_by(["point_key", "device", "hardware"], maintain_order=True)):
            fig = go.Figure()
            for (method, impl, dtype), g in per_point.group_by(["method", "impl", "dtype"], maintain_order=True):
                name = f"{method}/{impl} ({dtype})"
                color = ctx.styles.color(method)
                steps = g["step"].to_list()
                fig.add_trace(go.Scatter(x=steps + steps[::-1], y=g["hi"].to_list() + g["lo"].to_list()[::-1],
                                         fill="toself", opacity=0.15, line={"width": 0}, fillcolor=color, mode="lines",
                                         hoverinfo="skip", showlegend=False, legendgroup=name, name=f"{name} band"))
                fig.add_trace(go.Scatter(x=steps, y=g["mean"].to_list(), mode="lines", name=name, legendgroup=name,
                                         line=ctx.styles.line(method, impl)))
            target = targets_of.get(pkey)
            if target is not None:  # the fixed target the steps-to-target figures count to
                fig.add_hline(y=target, line={"dash": "dash", "color": "#000000"},
                              annotation_text=f"target {target:g}")
            fig.update_layout(xaxis_title="step", yaxis_title=header(final, "eval metric") + " (mean; band: min–max "
                              "over seeds)", yaxis={"automargin": True})
            label = f"{where(device, hardware)}, {ctx.label(pkey)}"
            curve_options.append({"label": label, "title": pkey, "facets": {"machine": where(device, hardware)},
                                  "figure": _figure(
                fig, f"{prefix}-curve{n}", f"training curves, {label}", 480)})
    per_seed = frame.filter(pl.col("metric").is_in(["steps_to_target", "time_to_target_s"]) & (pl.col("seed") >= 0))
    target_views = []
    for metric, label in (("steps_to_target", "Steps to target"), ("time_to_target_s", "Time to target")):
        rows = per_seed.filter(pl.col("metric") == metric)
        if not with_figures or rows.is_empty() or rows["value"].is_null().all():
            continue  # no target on this task, or nobody reached it: the table says which
        options = []
        rank = {k: n for n, k in enumerate(ctx.order)}
        rows = rows.with_columns(pl.col("point_key").replace_strict(rank, default=len(rank)).alias("_rank")).sort(
            ["_rank", "point_key", "device", "hardware", "method", "impl", "dtype", "seed"])
        for n, ((pkey, device, hardware), group) in enumerate(
                rows.group_by(["point_key", "device", "hardware"], maintain_order=True)):
            bars = []
            for (method, impl, dtype), g in group.group_by(["method", "impl", "dtype"], maintain_order=True):
                values = [v for v in g["value"].to_list() if v is not None]
                ci = _ci(values)
                mean = ci[0] if ci else (values[0] if values else None)
                half = ci[1] if ci else 0.0
                # steps and seconds are never negative: the interval's lower arm stops at 0
                bars.append((mean, f"{method}/{impl} ({dtype})", method, half, min(half, mean or 0.0),
                             g.height - len(values)))
            bars.sort(key=lambda b: (b[0] is None, b[0] if b[0] is not None else 0.0, b[1]))  # best first
            fig = go.Figure(go.Bar(
                x=[b[1] for b in bars], y=[b[0] for b in bars],
                error_y={"type": "data", "array": [b[3] for b in bars], "arrayminus": [b[4] for b in bars]},
                marker={"color": [ctx.styles.color(b[2]) for b in bars]},
                text=[f"{b[5]} missed" if b[5] else "" for b in bars], textposition="outside"))
            fig.update_layout(yaxis_title=header(ctx.declared.get(metric), metric, label.lower()) + ": mean, 95% "
                              "interval", yaxis={"automargin": True, "rangemode": "tozero"},
                              xaxis={"automargin": True})
            title = f"{label.lower()} (seeds that missed excluded), {where(device, hardware)}, {ctx.label(pkey)}"
            options.append({"label": f"{where(device, hardware)}, {ctx.label(pkey)}", "title": pkey,
                            "facets": {"machine": where(device, hardware)},
                            "figure": _figure(fig, f"{prefix}-{metric}{n}", title)})
        target_views.append(view(f"{prefix}-{metric}", f"{label}: mean and 95% t-interval over seeds, best first",
                                 options, "device, point"))
    reached = frame.filter((pl.col("metric") == "steps_to_target") & pl.col("value").is_not_null())
    profile = analysis.performance_profiles(frame) if with_figures and not reached.is_empty() else pl.DataFrame()
    profile_view = None
    if not profile.is_empty():
        fig = go.Figure()
        for (name,), g in profile.sort(["method", "tau"]).group_by(["method"], maintain_order=True):
            method, _, impl = name.partition("/")
            fig.add_trace(go.Scatter(x=g["tau"].to_list(), y=g["rho"].to_list(), mode="lines+markers", name=name,
                                     line={**ctx.styles.line(method, impl), "shape": "hv"},
                                     marker=ctx.styles.marker(method, impl)))
        fig.update_layout(xaxis_title="tau (steps to target / the best method's, per workload)",
                          yaxis_title="fraction of workloads solved within tau [higher is better]",
                          yaxis_range=[0, 1.05])
        profile_view = view(f"{prefix}-profile", "Performance profile", [{"label": "", "title": "", "figure": _figure(
            fig, f"{prefix}-profile", "performance profile over this task's workloads (grid points x devices; "
            "AlgoPerf-style, steps to target)")}])
    views = [v for v in (view(f"{prefix}-curves", "Training curves", curve_options, "device, point"),
                         *target_views, profile_view) if v is not None]
    def point(key: str) -> Cell:
        return Cell(ctx.label(key), ctx.order.index(key) if key in ctx.order else None, key, key)

    sig_rows = [
        {"method": r["method"], "impl": r["impl"], "point": point(r["point_key"]),
         "device": where(r["device"], r.get("hardware") or ""),
         "metric": header(resolve(r["metric"], ctx.declared), r["metric"]), "vs": r["baseline"],
         "seeds": f"{r['seeds']} ({r['failed']} vs {r['failed_baseline']} failed)",
         "p": Cell(_fmt(r["p_value"]), r["p_value"]), "adjusted p": Cell(_fmt(r["p_adjusted"]), r["p_adjusted"]),
         "verdict": "better" if r["better"] else "worse" if r["worse"] else "not significant",
         "detail": r["message"]}
        for r in verdicts.sort(["point_key", "method", "impl", "metric"]).iter_rows(named=True)
    ] if not verdicts.is_empty() else []
    final, loss = ctx.declared.get("final_metric"), ctx.declared.get("final_loss")
    rows = [
        {"method": r["method"], "impl": r["impl"], "point": point(r["point_key"]),
         "device": where(r["device"], r["hardware"]), "seeds ok": f"{r['ok_seeds']}/{r['seeds']}",
         header(final, "final_metric", "final metric, mean ± std"): Cell(
             f"{_fmt(r['final_metric_mean'])} ± {_fmt(r['final_metric_std'])}", r["final_metric_mean"]),
         header(loss, "final_loss", "final loss, mean"): Cell(_fmt(r["final_loss_mean"]), r["final_loss_mean"]),
         header(ctx.declared.get("steps_to_target"), "steps_to_target", "steps to target, median"): Cell(
             _fmt(r["steps_to_target_median"]), r["steps_to_target_median"]),
         header(ctx.declared.get("time_to_target_s"), "time_to_target_s", "time to target, median"): Cell(
             _fmt(r["time_to_target_s_median"]), r["time_to_target_s_median"]),
         "seeds reaching target": f"{r['seeds_reaching_target']}/{r['seeds']}"}
        for r in summary.iter_rows(named=True)
    ] if not summary.is_empty() else []
    others = frame.filter((pl.col("seed") >= 0) & pl.col("value").is_not_null()
                          & ~pl.col("metric").is_in(list(SHOWN_ELSEWHERE)))
    other_rows = []
    if not others.is_empty():
        medians = others.group_by([*analysis.CASE, "metric", "unit"]).agg(pl.col("value").median()).sort(
            [*analysis.CASE, "metric", "unit"])
        metrics = sorted(set(medians["metric"].to_list()))
        units = dict(medians.select("metric", "unit").unique(subset="metric", keep="first", maintain_order=True)
                     .iter_rows())
        names = {m: header(resolve(m, ctx.declared), m) for m in metrics}
        for case, g in medians.group_by(analysis.CASE, maintain_order=True):
            values = dict(g.select("metric", "value").iter_rows())
            other_rows.append({"method": case[1], "impl": case[2], "point": point(case[3]),
                               "device": where(case[5], case[6]),
                               **{names[m]: Cell(_fmt(values.get(m), "bytes" if units.get(m) == "bytes" else ""),
                                                 values.get(m)) for m in metrics}})
    info = info if info is not None else pl.DataFrame()
    boards = workload_leaderboards(frame, info, task, verdicts, ctx.declared, ctx.order, ctx.labels, multi)
    mine = info.filter(pl.col("task") == task) if not info.is_empty() else info
    baseline = (mine["baseline"][0], mine["baseline_impl"][0]) if not mine.is_empty() else (None, None)
    table = analysis.verdict_table(frame, info, task) if with_figures and not info.is_empty() else pl.DataFrame()
    advice = workload_advice(table, baseline) + [_scope(frame.filter(pl.col("seed") >= 0), ctx)]
    return {
        "leaderboard": view(f"{prefix}-leaderboard", "Leaderboard", boards, "all points, or one"),
        "views": views,
        "advice": advice,
        "tables": [
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
