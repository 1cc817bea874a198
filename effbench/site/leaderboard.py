"""The leaderboard at the top of every task page: which method (kernel tasks: which implementation), at
what cost.

Kernel tasks: one row per (method, impl) at one grid point, dtype and device: time, forward-only time where
the task stores it, peak memory, worst error over seeds, speedup and memory saving against the method's own
reference implementation (never across methods: a sliding-window kernel is not a faster dense attention),
roofline fraction where stored, and status. One table per (hardware, dtype, point), the largest point first.

Workload tasks: one row per (method, impl): over all points, what ``analysis.verdict_table`` computes (the
README's table: solved, rho(1), rho(2), significant wins and losses against the baseline under the corrected
p); per point, the final metric's mean with its 95% interval over seeds, median steps and time to the target,
and the verdict against the baseline. Every header names the metric's unit and direction from the task's
declarations (``tasks.metrics``).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from effbench import analysis
from effbench.metrics import Metric, resolve
from effbench.site.common import _fmt
from effbench.site.tables import Cell, header, ratio_header

BELOW = "below resolution"  # a page-granular CPU peak that reads ~0: no ratio can be formed from it


def _num(value: float | None, kind: str = "", suffix: str = "") -> Cell:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Cell("—", None)
    return Cell(_fmt(float(value), kind) + suffix, float(value))


def _point_cell(key: str, label: str, rank: int) -> Cell:
    return Cell(label, rank, key, key)


def kernel_leaderboards(frame: pl.DataFrame, summary: pl.DataFrame, declared: dict[str, Metric],
                        order: list[str], labels: dict[str, str], where_of: dict[tuple[str, str], str],
                        size: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Options of the kernel leaderboard: {"label", "table"} per (device, hardware, dtype, point), largest point
    first within each (device, hardware, dtype). ``order``: point keys by size; ``where_of``: (device,
    hardware) -> its label; ``size``: point key -> declared problem size."""
    if summary.is_empty():
        return []
    fwd = frame.filter((pl.col("metric") == "time_fwd_ms") & (pl.col("seed") == 0) & pl.col("value").is_not_null())
    fwd_of = {(r["method"], r["impl"], r["point_key"], r["dtype"], r["device"], r["hardware"]): r["value"]
              for r in fwd.iter_rows(named=True)}
    roofline = summary["roofline_fraction"].is_not_null().any()
    floor = analysis.MEMORY_FLOOR_BYTES
    time_c = header(declared.get("time_ms"), "time_ms", "time")
    fwd_c = header(resolve("time_fwd_ms", declared), "time_fwd_ms", "forward time")
    speed_c = ratio_header("speedup vs reference", declared.get("time_ms"))
    mem_c = header(declared.get("peak_mem_bytes"), "peak_mem_bytes", "peak memory")
    save_c = ratio_header("memory saving vs reference", declared.get("peak_mem_bytes"))
    err_c = header(declared.get("rel_error"), "rel_error", "worst error over seeds")
    roof_c = header(declared.get("roofline_fraction"), "roofline_fraction", "roofline fraction")
    columns = ["method", "impl", "status", time_c, *([fwd_c] if fwd_of else []), speed_c, mem_c, save_c, err_c,
               *([roof_c] if roofline else [])]
    options = []
    rank = {key: n for n, key in enumerate(order)}
    for (device, hardware, dtype), part in summary.sort(["device", "hardware", "dtype"]).group_by(
            ["device", "hardware", "dtype"], maintain_order=True):
        resolution = float(floor.get(device, 0))
        # a method that does not apply at a point is skipped there: not a row of its leaderboard
        part = part.filter(pl.col("status") != "skipped")
        ran = dict(part.filter(pl.col("status") == "ok").group_by("point_key").len().iter_rows())
        # the largest point first; of equal sizes, the one where most implementations ran
        big = size or rank
        for point in sorted(set(part["point_key"]), key=lambda k: (-big.get(k, -1), -ran.get(k, 0), k)):
            here = part.filter(pl.col("point_key") == point).with_columns(
                (pl.col("status") != "ok").alias("_failed")).sort(["_failed", "time_ms", "method", "impl"],
                                                                  nulls_last=True)
            rows = []
            for r in here.iter_rows(named=True):
                reference = r["impl"] == "reference"
                ratio = r["memory_ratio"]
                below = (ratio is None and r["ref_mem_bytes"] is not None and r["peak_mem_bytes"] is not None
                         and min(r["ref_mem_bytes"], r["peak_mem_bytes"]) < resolution)
                row = {"method": r["method"], "impl": r["impl"],
                       "status": Cell(r["status"], r["status"], r["message"] or None),
                       time_c: _num(r["time_ms"], "ms"),
                       speed_c: (Cell("reference", 1.0, raw=1.0) if reference and r["speedup"] is not None
                                 else _num(r["speedup"], "", "×")),
                       mem_c: _num(r["peak_mem_bytes"], "bytes"),
                       save_c: (Cell(BELOW, None, "a peak under the device's memory resolution "
                                              f"({_fmt(resolution, 'bytes')}): no ratio", BELOW) if below
                                else Cell("reference", 1.0, raw=1.0) if reference and ratio is not None
                                else _num(ratio, "", "×")),
                       err_c: _num(r["rel_error"])}
                if fwd_of:
                    row[fwd_c] = _num(fwd_of.get((r["method"], r["impl"], point, dtype, device, hardware)), "ms")
                if roofline:
                    row[roof_c] = _num(r["roofline_fraction"])
                rows.append(row)
            where = where_of.get((device, hardware), device)
            label = f"{where}, {dtype}, {labels.get(point, point)}"
            options.append({"label": label, "title": point, "facets": {"machine": where, "dtype": dtype}, "table": {
                "columns": columns, "rows": rows,
                "extra": [{"point_key": point, "dtype": dtype, "device": device, "hardware": hardware}] * len(rows)}})
    return options


def _ci(values: list[float]) -> tuple[float, float] | None:
    from effbench.site.workload import _ci as ci

    return ci(values)


def workload_leaderboards(frame: pl.DataFrame, info: pl.DataFrame, task: str, verdicts: pl.DataFrame,
                          declared: dict[str, Metric], order: list[str], labels: dict[str, str],
                          name_hardware: bool = False) -> list[dict[str, Any]]:
    """Options of the workload leaderboard: all points first (``verdict_table``), then one per point and
    device (named with its hardware where the page has several, or ``name_hardware``)."""
    table = analysis.verdict_table(frame, info, task) if not info.is_empty() else pl.DataFrame()
    summary = analysis.workload_summary(frame.filter(pl.col("seed") >= 0))
    if summary.is_empty():
        return []
    row = info.filter(pl.col("task") == task).row(0, named=True) if not info.filter(pl.col("task") == task).is_empty(
        ) else {}
    baseline = (row.get("baseline"), row.get("baseline_impl"))
    final, steps, secs = (declared.get("final_metric"), declared.get("steps_to_target"),
                          declared.get("time_to_target_s"))
    options = []
    if not table.is_empty():
        medians = summary.group_by(["method", "impl"]).agg(
            pl.col("steps_to_target_median").median().alias("steps"),
            pl.col("time_to_target_s_median").median().alias("secs"))
        medians = {(r["method"], r["impl"]): r for r in medians.iter_rows(named=True)}
        compared = [c.removesuffix("_better") for c in table.columns if c.endswith("_better")]
        solved = table["solved"].is_not_null().any()
        columns = ["method", "impl", *(["solved [points, higher is better]", "rho(1) [fraction, higher is better]",
                                        "rho(2) [fraction, higher is better]"] if solved else []),
                   *(f"{header(resolve(m, declared), m)}: significantly better / worse than the baseline"
                     for m in compared),
                   header(steps, "steps_to_target", "steps to target, median over points"),
                   header(secs, "time_to_target_s", "time to target, median over points"),
                   header(final, "final_metric", "final metric, median over points"),
                   "failed seeds [seeds, lower is better]"]
        rows = []
        for r in table.iter_rows(named=True):
            base = (r["method"], r["impl"]) == baseline
            m = medians.get((r["method"], r["impl"]), {})
            cells: dict[str, Any] = {"method": r["method"] + (" (baseline)" if base else ""), "impl": r["impl"]}
            if solved:
                cells[columns[2]] = Cell(f"{r['solved']}/{r['points']}", r["solved"])
                cells[columns[3]] = _num(r.get("rho(1)"))
                cells[columns[4]] = _num(r.get("rho(2)"))
            for metric, column in zip(compared, columns[2 + 3 * solved:], strict=False):
                better = r.get(f"{metric}_better")
                cells[column] = (Cell("baseline", None) if base else Cell("—", None) if better is None else
                                 Cell(f"{better} / {r[f'{metric}_worse']}", better - r[f"{metric}_worse"]))
            cells[columns[-4]] = _num(m.get("steps"))
            cells[columns[-3]] = _num(m.get("secs"))
            cells[columns[-2]] = _num(r["final_metric_median"])
            cells[columns[-1]] = Cell(str(r["failed_seeds"]), r["failed_seeds"])
            rows.append(cells)
        options.append({"label": "all points, at a glance: solved, performance profile, significant wins and losses",
                        "title": "", "table": {"columns": columns, "rows": rows}})
    per_seed = frame.filter((pl.col("seed") >= 0) & (pl.col("metric") == "final_metric"))
    values = {}
    for key, g in per_seed.group_by(["method", "impl", "point_key", "device", "hardware"], maintain_order=True):
        values[key] = [v for v in g["value"].to_list() if v is not None]
    flags: dict[tuple, list[str]] = {}
    if not verdicts.is_empty():
        for v in verdicts.sort(["metric"]).iter_rows(named=True):
            key = (v["method"], v["impl"], v["point_key"], v["device"], v.get("hardware"))
            word = "better" if v["better"] else "worse" if v["worse"] else "n.s."
            flags.setdefault(key, []).append(f"{v['metric']}: {word} (p={_fmt(v['p_adjusted'])})")
    columns = ["method", "impl", "seeds ok",
               header(final, "final_metric", "final metric, mean [95% interval over seeds]"),
               header(steps, "steps_to_target", "steps to target, median"),
               header(secs, "time_to_target_s", "time to target, median"),
               "seeds reaching the target", "against the baseline (corrected p)"]
    rank = {key: n for n, key in enumerate(order)}
    ranked = summary.with_columns(pl.col("point_key").replace_strict(rank, default=-1).alias("_rank")).sort(
        ["_rank", "device", "hardware", "final_metric_mean", "method", "impl"],
        descending=[True, False, False, bool(final is None or final.better != "lower"), False, False],
        nulls_last=True)
    for (point, device, hardware), part in ranked.group_by(["point_key", "device", "hardware"], maintain_order=True):
        rows = []
        for r in part.iter_rows(named=True):
            key = (r["method"], r["impl"], point, device, hardware)
            ci = _ci(values.get(key, []))
            mean = r["final_metric_mean"]
            text = "—" if mean is None else (f"{_fmt(mean)} [{_fmt(mean - ci[1])}, {_fmt(mean + ci[1])}]" if ci
                                             else _fmt(mean))
            rows.append({"method": r["method"] + (" (baseline)" if (r["method"], r["impl"]) == baseline else ""),
                         "impl": r["impl"], "seeds ok": Cell(f"{r['ok_seeds']}/{r['seeds']}", r["ok_seeds"]),
                         columns[3]: Cell(text, mean, raw=mean),
                         columns[4]: _num(r["steps_to_target_median"]),
                         columns[5]: _num(r["time_to_target_s_median"]),
                         "seeds reaching the target": Cell(f"{r['seeds_reaching_target']}/{r['seeds']}",
                                                           r["seeds_reaching_target"]),
                         columns[7]: "; ".join(flags.get(key, [])) or ("baseline" if (r["method"], r["impl"])
                                                                       == baseline else "—")})
        multi = name_hardware or ranked.select("device", "hardware").unique().height > 1
        where = f"{device} ({hardware})" if multi else device
        options.append({"label": f"{where}, {labels.get(point, point)}", "title": point, "facets": {"machine": where},
                        "table": {
            "columns": columns, "rows": rows,
            "extra": [{"point_key": point, "device": device, "hardware": hardware}] * len(rows)}})
    return options
