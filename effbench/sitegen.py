"""Static site from the DuckDB file alone: an overview page and one page per family.

Everything shown comes from the store (method metadata from its ``methods`` table);
every string is escaped by Jinja's autoescape, and figure data is embedded as JSON with
``<``, ``>`` and ``&`` escaped, so names and error messages from users' plugins cannot
inject markup. plotly.js is copied once into ``assets/`` so the site works offline.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from effbench import analysis
from effbench.store import DEFAULT_DB

FAMILIES = ("loss", "optimizer", "sampler", "attention")


@dataclass
class Figure:
    id: str
    title: str
    json: str  # safe to place inside <script type="application/json">


def _figure(fig: go.Figure, fig_id: str, title: str) -> Figure:
    fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 40, "b": 60}, height=420)
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
        if kind == "ms":
            return f"{value:.3g} ms"
        return f"{value:.3g}"
    return str(value)


def _kernel_section(frame: pl.DataFrame, task: str, fig_prefix: str) -> dict[str, Any]:
    summary = analysis.speedups(frame.filter(pl.col("task") == task))
    figures = []
    for metric, label, log in (("time_ms", "time (ms, median)", True), ("peak_mem_bytes", "peak memory (bytes)", True)):
        fig = go.Figure()
        for key, group in summary.group_by(["method", "impl", "device", "dtype"], maintain_order=True):
            method, impl, device, dtype = key
            ok = group.filter(pl.col("status").is_in(["ok", "wrong"]))
            fig.add_trace(go.Scatter(
                x=ok["point_key"].to_list(), y=ok[metric].to_list(), mode="lines+markers",
                name=f"{method}/{impl} ({device}, {dtype})",
            ))
        fig.update_layout(yaxis_title=label, xaxis_title="grid point", yaxis_type="log" if log else "linear")
        figures.append(_figure(fig, f"{fig_prefix}-{metric}", f"{label} per grid point"))
    rows = [
        {
            "method": r["method"], "impl": r["impl"], "point": r["point_key"], "dtype": r["dtype"],
            "device": r["device"] + (f" ({r['gpu_name']})" if r["gpu_name"] else ""),
            "status": r["status"], "time": _fmt(r["time_ms"], "ms"),
            "speedup": _fmt(r["speedup"]) + ("×" if r["speedup"] is not None else ""),
            "memory": _fmt(r["peak_mem_bytes"], "bytes"), "rel_error": _fmt(r["rel_error"]),
            "message": r["message"] or "",
        }
        for r in summary.iter_rows(named=True)
    ]
    columns = ["method", "impl", "point", "dtype", "device", "status", "time", "speedup", "memory", "rel_error",
               "message"]
    return {"figures": figures, "columns": columns, "rows": rows}


def _workload_section(frame: pl.DataFrame, task: str, db: Path, fig_prefix: str) -> dict[str, Any]:
    rows_frame = frame.filter(pl.col("task") == task)
    summary = analysis.workload_summary(rows_frame)
    curves = analysis.curves(db, task)
    figures = []
    if not summary.is_empty():
        # one bar per method and grid point: different points are different workloads, never merged
        fig = go.Figure()
        for (pkey,), group in summary.group_by(["point_key"], maintain_order=True):
            labels = [f"{m}/{i} ({d})" for m, i, d in group.select("method", "impl", "device").iter_rows()]
            fig.add_trace(go.Bar(x=labels, y=group["final_metric_mean"].to_list(), name=pkey,
                                 error_y={"type": "data", "array": group["final_metric_std"].fill_null(0).to_list()}))
        fig.update_layout(barmode="group", yaxis_title="final eval metric (mean ± std over seeds)",
                          legend={"orientation": "h", "y": -0.3})
        figures.append(_figure(fig, f"{fig_prefix}-final", "final metric per grid point"))
    if not curves.is_empty():
        mean = curves.group_by(["point_key", "method", "impl", "device", "step"]).agg(
            pl.col("eval_metric").mean().alias("mean"), pl.col("eval_metric").min().alias("lo"),
            pl.col("eval_metric").max().alias("hi"),
        ).sort("step")
        for n, ((pkey,), per_point) in enumerate(mean.group_by(["point_key"], maintain_order=True)):
            fig = go.Figure()
            for (method, impl, device), group in per_point.group_by(["method", "impl", "device"],
                                                                      maintain_order=True):
                fig.add_trace(go.Scatter(
                    x=group["step"].to_list(), y=group["mean"].to_list(), mode="lines",
                    name=f"{method}/{impl} ({device})",
                    error_y={"type": "data", "symmetric": False, "array": (group["hi"] - group["mean"]).to_list(),
                             "arrayminus": (group["mean"] - group["lo"]).to_list()},
                ))
            fig.update_layout(xaxis_title="step", yaxis_title="eval metric (mean, bars: min–max over seeds)")
            figures.append(_figure(fig, f"{fig_prefix}-curves{n}", f"training curves [{pkey}]"))
    rows = [
        {
            "method": r["method"], "impl": r["impl"], "point": r["point_key"], "device": r["device"],
            "seeds ok": f"{r['ok_seeds']}/{r['seeds']}",
            "final metric": f"{_fmt(r['final_metric_mean'])} ± {_fmt(r['final_metric_std'])}",
            "final loss": _fmt(r["final_loss_mean"]),
            "steps to target (median)": _fmt(r["steps_to_target_median"]),
            "time to target (median s)": _fmt(r["time_to_target_s_median"]),
            "seeds reaching target": f"{r['seeds_reaching_target']}/{r['seeds']}",
        }
        for r in summary.iter_rows(named=True)
    ]
    columns = list(rows[0]) if rows else []
    return {"figures": figures, "columns": columns, "rows": rows}


def build(db: str | Path = DEFAULT_DB, out: str | Path = "site") -> Path:
    """Write the site to ``out``; returns the index page's path."""
    db, out = Path(db), Path(out)
    frame = analysis.open_results(db)
    run_frame = analysis.runs(db)
    method_frame = analysis.methods(db)
    out.mkdir(parents=True, exist_ok=True)
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copyfile(plotly_js, assets / "plotly.min.js")
    env = Environment(loader=PackageLoader("effbench", "templates"), autoescape=select_autoescape(["html"]))
    (assets / "effbench.css").write_text(
        (Path(__file__).parent / "static" / "effbench.css").read_text(encoding="utf-8"), encoding="utf-8"
    )

    families = []
    for family in FAMILIES:
        fam_rows = frame.filter(pl.col("family") == family)
        tasks = sorted(set(fam_rows["task"].to_list()) | set(
            method_frame.filter(pl.col("family") == family)["task"].to_list()))
        counts = analysis.case_status(fam_rows)["status"].value_counts() if not fam_rows.is_empty() else None
        families.append({
            "name": family, "tasks": tasks,
            "status": dict(counts.iter_rows()) if counts is not None else {},
        })

    runs = [
        {k: ("" if v is None else str(v)) for k, v in r.items()}
        for r in run_frame.head(30).iter_rows(named=True)
    ]
    (out / "index.html").write_text(
        env.get_template("index.html").render(families=families, runs=runs, page="index"), encoding="utf-8"
    )
    for family in families:
        sections = []
        for i, task in enumerate(family["tasks"]):
            task_rows = frame.filter(pl.col("task") == task)
            kind = "workload" if task_rows.filter(pl.col("metric") == "final_metric").height else "kernel"
            prefix = f"fig{i}"
            body = (_workload_section(frame, task, db, prefix) if kind == "workload"
                    else _kernel_section(frame, task, prefix))
            task_methods = [
                {k: ("" if v is None else str(v)) for k, v in m.items()}
                for m in method_frame.filter(pl.col("task") == task).iter_rows(named=True)
            ]
            sections.append({"task": task, "kind": kind, "methods": task_methods, **body})
        (out / f"{family['name']}.html").write_text(
            env.get_template("family.html").render(family=family, sections=sections, page=family["name"]),
            encoding="utf-8",
        )
    return out / "index.html"


def figure_payloads(html: str) -> list[Any]:
    """Parse the figure JSON embedded in a page (for tests)."""
    payloads, marker = [], 'type="application/json">'
    for chunk in html.split(marker)[1:]:
        payloads.append(json.loads(chunk.split("</script>", 1)[0]))
    return payloads
