"""A workload task's page body: verdicts, curves, steps to target with 95% intervals, profiles, tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from effbench import analysis
from effbench.site.common import PALETTE, SHOWN_ELSEWHERE, Figure, _figure, _fmt, _points, point_labels


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
