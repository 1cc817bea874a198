"""The overview's pieces: headlines, coverage, the kernel-build tables of method pages, the history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl

from effbench import analysis
from effbench.analysis import UNRECORDED_GRID, grid_slices
from effbench.site.colors import MARKERS, styles
from effbench.site.common import (
    HISTORY_THRESHOLD,
    Figure,
    _figure,
    _fmt,
    _ordered_points,
    _shared_devices,
    _where,
    method_page,
    point_labels,
    task_page,
)


def headline(frame: pl.DataFrame, kind: str, verdicts: pl.DataFrame | None = None,
             labels: dict[str, str] | None = None, order: list[str] | None = None,
             named: frozenset[str] = frozenset(), several: bool = False) -> list[str]:
    """One sentence per device (kernel) or grid point (workload) saying what wins, with its numbers; ``named``:
    devices whose hardware is named wherever they appear (kernel), ``several``: name the hardware of every
    workload headline (the page's other grids ran on several machines)."""
    lines = []
    order_all = order
    if kind == "kernel":
        # Implementations of one method compute one function: compare within a method, never across methods
        # (a sliding-window kernel is not a faster dense attention).
        summary = analysis.speedups(frame)
        if summary.is_empty():
            return lines
        shared = _shared_devices(summary) | named
        for (device, hardware, dtype, method), group in summary.group_by(["device", "hardware", "dtype", "method"],
                                                                         maintain_order=True):
            # the task's points by declared size (the summary has no sizes column: its own order would fall back
            # on the integer proxy, which counts goldfish_k=4 as a size)
            mine = set(group["point_key"])
            order = [k for k in order_all if k in mine] if order_all else _ordered_points(group)
            at = group.filter((pl.col("point_key") == order[-1]) & (pl.col("status") == "ok")
                              & pl.col("time_ms").is_not_null())
            if at.is_empty():
                continue
            best = at.sort("time_ms").row(0, named=True)
            where = _where(device, hardware, best["gpu_name"], shared)
            if best["impl"] == "reference":
                verdict = "the reference is its fastest correct implementation"
            else:
                memory = f", {best['memory_ratio']:.2f}x less memory" if best["memory_ratio"] else ""
                if best["speedup"] and 1 / HISTORY_THRESHOLD < best["speedup"] < HISTORY_THRESHOLD:
                    # a ratio of two medians this close to 1 is run-to-run noise, not a winner
                    verdict = (f"no implementation is clearly faster than the reference ({best['impl']}: "
                               f"{best['speedup']:.2f}x the reference's speed, within run-to-run noise{memory})")
                else:
                    speed = f", {best['speedup']:.2f}x the reference's speed" if best["speedup"] else ""
                    verdict = f"fastest correct implementation {best['impl']}{speed}{memory}"
            untimed = ("" if analysis.timed_grid(best.get("grid", "cpu")) else
                       f" (grid {best['grid'] or UNRECORDED_GRID}: a check that it runs, not a timing to compare)")
            largest = (labels or {}).get(order[-1], order[-1])
            lines.append(f"{method} on {where}, {dtype}, largest point {largest}: {verdict}, "
                         f"{_fmt(best['time_ms'], 'ms')}{untimed}.")
        return lines
    lines += _memory_headline(frame, labels or point_labels(frame), several)
    summary = analysis.workload_summary(frame)
    if summary.is_empty():
        return lines
    sig = (verdicts.filter(pl.col("metric") == "final_metric") if verdicts is not None and not verdicts.is_empty()
           else pl.DataFrame())
    # one headline per point and hardware: two CPU models' runs are two measurements, never one mixed ranking
    where, several = _point_keys(summary, several)
    flagged = {tuple(r[k] for k in ("method", "impl", *where)): r for r in sig.iter_rows(named=True)
               if all(k in r for k in where)}
    labels = labels or point_labels(frame)
    for key, group in summary.sort(where).group_by(where, maintain_order=True):
        pkey, device = key[0], key[1]
        if several:
            device = f"{device} ({key[2]})"
        ranked = group.drop_nulls("final_metric_mean").sort(["final_metric_mean", "method", "impl"],
                                                            descending=[True, False, False])
        if ranked.is_empty():
            continue
        best = ranked.row(0, named=True)
        verdict = flagged.get((best["method"], best["impl"], *key))
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


def _point_keys(frame: pl.DataFrame, several: bool = False) -> tuple[list[str], bool]:
    """A workload headline's grouping (point, device and, where recorded, hardware) and whether each headline
    names its hardware: the frame holds several hardware models, or ``several`` (the page's other grids do)."""
    has = "hardware" in frame.columns
    named = has and (several or frame["hardware"].n_unique() > 1)
    return ["point_key", "device", *(["hardware"] if has else [])], named


def _memory_headline(frame: pl.DataFrame, labels: dict[str, str], several: bool = False) -> list[str]:
    """A workload that measures one step's memory (sampler/memory's ``train_state_bytes``) leads with it: per
    point and hardware, the method holding the least, against the most, medians over seeds."""
    rows = frame.filter((pl.col("metric") == "train_state_bytes") & (pl.col("status") == "ok")
                        & pl.col("value").is_not_null())
    if rows.is_empty():
        return []
    where, several = _point_keys(rows, several)
    medians = rows.group_by([*where, "method", "impl"], maintain_order=True).agg(pl.col("value").median())
    lines = []
    for key, group in medians.sort([*where, "value", "method", "impl"]).group_by(where, maintain_order=True):
        least, most = group.row(0, named=True), group.row(-1, named=True)
        device = f"{key[1]} ({key[2]})" if several else key[1]
        lines.append(f"{device}, {labels.get(key[0], key[0])}: least training-step memory (train_state_bytes, lower "
                     f"is better, median over seeds) {least['method']}/{least['impl']} {_fmt(least['value'], 'bytes')}"
                     f", against {_fmt(most['value'], 'bytes')} for {most['method']}/{most['impl']}.")
    return lines


def coverage(frame: pl.DataFrame, method_frame: pl.DataFrame) -> list[dict[str, str]]:
    """Per task/method/impl: cases by status on each device in the latest results, per grid where there are
    several (a case of two grids is two results, never one count)."""
    status = analysis.case_status(frame) if not frame.is_empty() else pl.DataFrame()
    grids = ([g for g, _ in grid_slices(status)] if not status.is_empty() and "grid" in status.columns else [])
    rows = []
    for m in method_frame.iter_rows(named=True):
        for impl in (m["impls"] or "").split(","):
            cells = {}
            if not status.is_empty():
                mine = status.filter((pl.col("task") == m["task"]) & (pl.col("method") == m["method"])
                                     & (pl.col("impl") == impl))
                for (device,), on in mine.sort("device").group_by(["device"], maintain_order=True):
                    parts = []
                    for grid, g in grid_slices(on) if len(grids) > 1 else [("", on)]:
                        counts = dict(g["status"].value_counts().iter_rows())
                        text = ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
                        parts.append(f"{grid}: {text}" if grid else text)
                    cells[device] = "; ".join(parts)
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
    # the site's colour per method and dash per impl; the point is the marker (a case's points share both)
    look = styles((t.split("/", 1)[0], m, i) for t, m, i in rows.select("task", "method", "impl").unique().iter_rows())
    for n, ((task, device, hardware), group) in enumerate(rows.group_by(["task", "device", "hardware"],
                                                                         maintain_order=True)):
        where = _where(device, hardware, None, shared)
        fig = go.Figure()
        points = {key: n for n, key in enumerate(sorted(set(group["point_key"].to_list())))}
        for (method, impl, pkey, dtype), g in group.group_by(["method", "impl", "point_key", "dtype"],
                                                              maintain_order=True):
            if g.height < 2:
                continue
            g = g.sort("started_at")
            marker = {**look.marker(method, impl), "symbol": MARKERS[points[pkey] % len(MARKERS)]}
            fig.add_trace(go.Scatter(x=[str(t) for t in g["started_at"]], y=g["value"].to_list(),
                                     mode="lines+markers", line=look.line(method, impl), marker=marker,
                                     name=f"{method}/{impl} {pkey} ({device}, {dtype})"))
        flagged = marks.filter((pl.col("task") == task) & (pl.col("device") == device)
                               & (pl.col("hardware") == hardware) & (pl.col("verdict") != "same"))
        for verdict, color in (("regression", "red"), ("improvement", "green")):
            f = flagged.filter(pl.col("verdict") == verdict)
            if not f.is_empty():
                fig.add_trace(go.Scatter(x=[str(t) for t in f["started_at"]], y=f["value"].to_list(), mode="markers",
                                         marker={"color": color, "size": 13, "symbol": "circle-open"},
                                         name=f"{verdict}s"))
        if fig.data:
            fig.update_layout(yaxis_type="log", yaxis_title="time_ms [ms, lower is better]",
                              xaxis_title="run started at", legend={"orientation": "h", "y": -0.35})
            figures.append(_figure(fig, f"history{n}", f"{task} across runs [{where}]", 480))
    for r in marks.filter(pl.col("verdict") != "same").iter_rows(named=True):
        table.append({"verdict": r["verdict"], "task": r["task"], "case": f"{r['method']}/{r['impl']}",
                      "point": r["point_key"], "dtype": r["dtype"],
                      "device": _where(r["device"], r["hardware"], None, shared),
                      "from run": r["previous_run"], "to run": r["run_id"], "commit": r["git_commit"] or "",
                      "ratio": f"{r['ratio']:.3f}x", "p": _fmt(r["p_value"])})
    return figures, table
