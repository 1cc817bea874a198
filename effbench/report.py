"""Findings tables rendered from the DB, so that a number in the docs cannot drift from its data.

A document keeps each table between markers::

    <!-- effbench report: workload optimizer/convergence -->
    ...generated markdown...
    <!-- effbench report: end -->

``render(db, spec)`` gives the markdown a block's spec names; ``check(db, text)`` lists the blocks whose text
differs from what the DB gives now; ``update(db, text)`` rewrites every block. Workload and matrix blocks read
the task's preferred grid only (timed grids first: gpu, then cpu; never two grids' rows as one), the kernel
block its newest timed run. Block kinds:

- ``workload TASK``: one row per method and impl: solved points, performance profile rho(1), rho(2),
  significant wins and losses against the task's baseline per compared metric (Mann-Whitney U,
  Benjamini-Hochberg), median final metric, failed seeds (``analysis.verdict_table``), after a line naming
  the runs, seeds, baseline and the targets' provenance.
- ``matrix TASK``: methods x points: median steps to the target / mean final metric, ``*`` where the
  difference from the baseline is significant, ``miss`` where a seed missed the target.
- ``kernel TASK``: at the task's largest point (by its declared size parameters) in its latest timed run, one
  row per impl: median time, peak memory, and both against the method's reference impl.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from effbench import analysis
from effbench.analysis import point_size
from effbench.rows import TIMED_GRIDS

BEGIN = "<!-- effbench report: {spec} -->"
END = "<!-- effbench report: end -->"
_BLOCK = re.compile(r"<!-- effbench report: (?P<spec>(?!end -->)[^>]*?) -->\n(?P<body>.*?)"
                    r"<!-- effbench report: end -->", re.S)
KINDS = ("workload", "matrix", "kernel")


class ReportError(ValueError):
    """A block spec that names no kind or task the DB knows."""


@dataclass(frozen=True)
class Mismatch:
    spec: str
    stored: str
    fresh: str


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _name(method: str, impl: str) -> str:
    return method + ("" if impl == "reference" else f" ({impl})")


class Report:
    """One DB's results, read once, rendered into as many blocks as asked."""

    def __init__(self, db: str | Path, declared_sizes: dict[str, list[str]] | None = None) -> None:
        """``declared_sizes``: task -> its size parameters, for runs whose shards predate the ``tasks`` rows
        that carry them (the CLI passes the registry's)."""
        self.frame = analysis.open_results(db, by_grid=True)  # a smoke run never hides a cpu run's case
        self.info = analysis.task_info(db)
        self.declared = declared_sizes or {}

    def _sizes(self, task: str) -> str | list[str] | None:
        rows = self.info.filter(pl.col("task") == task) if "sizes" in self.info.columns else pl.DataFrame()
        stored = rows["sizes"][0] if not rows.is_empty() else None
        return stored if stored not in (None, "[]") else self.declared.get(task)

    def render(self, spec: str) -> str:
        kind, _, task = spec.strip().partition(" ")
        if kind not in KINDS:
            raise ReportError(f"unknown block kind {kind!r} in {spec!r}; valid: {', '.join(KINDS)}")
        if task not in set(self.frame["task"]):
            raise ReportError(f"{spec!r}: the DB has no results of task {task!r}")
        return {"workload": self._workload, "matrix": self._matrix, "kernel": self._kernel}[kind](task)

    def _task_row(self, task: str) -> dict:
        rows = self.info.filter(pl.col("task") == task)
        if rows.is_empty():
            raise ReportError(f"the DB has no tasks row for {task!r} (runs older than shard format 4)")
        return rows.row(0, named=True)

    def _grid_rows(self, task: str) -> tuple[str, pl.DataFrame]:
        """The task's rows of its preferred grid (timed grids first, as the site opens on): a findings table
        never merges two grids' points, seeds or verdicts."""
        return analysis.grid_slices(self.frame.filter(pl.col("task") == task))[0]

    def _workload(self, task: str) -> str:
        grid, frame = self._grid_rows(task)
        table = analysis.verdict_table(frame, self.info, task)
        row = self._task_row(task)
        mine = frame.filter(pl.col("seed") >= 0)
        runs = ", ".join(f"`{r}`" for r in sorted(set(mine["run_id"])))
        seeds = mine.group_by(["method", "impl", "point_key"]).agg(pl.col("seed").n_unique())["seed"]
        count = str(seeds.min()) if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
        lines = [f"Runs {runs} (grid {grid}); {count} scored seeds per case; baseline "
                 f"{_name(row['baseline'], row['baseline_impl'])}; targets: {row['target']}", ""]
        compared = [m for m in json.loads(row["compare"]) if f"{m[0]}_better" in table.columns]
        solved = table["solved"].is_not_null().any()
        header = ["method", *(["solved", "ρ(1)", "ρ(2)"] if solved else [])]
        header += [f"{m.replace('_', ' ')}: sig. better / worse" for m, _ in compared]
        header += ["final metric (median over points)", "failed seeds"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in table.iter_rows(named=True):
            base = (r["method"], r["impl"]) == (row["baseline"], row["baseline_impl"])
            cells = [_name(r["method"], r["impl"]) + (" (baseline)" if base else "")]
            if solved:
                cells += [f"{r['solved']}/{r['points']}", _fmt(r.get("rho(1)")), _fmt(r.get("rho(2)"))]
            for metric, _ in compared:
                better = r.get(f"{metric}_better")
                cells.append("—" if base or better is None else f"{better} / {r[f'{metric}_worse']}")
            final = r["final_metric_median"]
            cells += ["—" if final is None else f"{final:.4f}", str(r["failed_seeds"])]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def _matrix(self, task: str) -> str:
        frame = self._grid_rows(task)[1].filter(pl.col("seed") >= 0)
        verdicts = analysis.significance(frame, self.info)
        marked = {(r["method"], r["impl"], r["point_key"], r["metric"]) for r in verdicts.iter_rows(named=True)
                  if r["significant"]} if not verdicts.is_empty() else set()
        summary = analysis.workload_summary(frame)
        status = analysis.case_status(frame)
        points = sorted(set(frame["point_key"]))
        lines = ["| method | " + " | ".join(f"p{i + 1}" for i in range(len(points))) + " |",
                 "|" + "---|" * (len(points) + 1)]
        for (method, impl), part in summary.sort(["method", "impl"]).group_by(["method", "impl"],
                                                                             maintain_order=True):
            cells = []
            for point in points:
                row = part.filter(pl.col("point_key") == point)
                states = set(status.filter((pl.col("method") == method) & (pl.col("impl") == impl)
                                           & (pl.col("point_key") == point))["status"])
                if row.is_empty() or states == {"skipped"}:
                    cells.append("skipped" if states == {"skipped"} else "—")
                    continue
                r = row.row(0, named=True)
                steps = f"{r['steps_to_target_median']:.0f}" if r["seeds_reaching_target"] == r["seeds"] else "miss"
                steps += "*" if (method, impl, point, "steps_to_target") in marked else ""
                significant = (method, impl, point, "final_metric") in marked
                final = f"{r['final_metric_mean']:.3f}" + ("*" if significant else "")
                cells.append(f"{steps} / {final}")
            lines.append(f"| {_name(method, impl)} | " + " | ".join(cells) + " |")
        lines += ["", *(f"p{i + 1}: `{point}`  " for i, point in enumerate(points))]
        return "\n".join(lines) + "\n"

    def _kernel(self, task: str) -> str:
        ok = self.frame.filter((pl.col("task") == task) & (pl.col("status") == "ok") & (pl.col("seed") == 0)
                               & pl.col("metric").is_in(["time_ms", "peak_mem_bytes"]) & pl.col("value").is_not_null())
        timed = ok.filter(pl.col("grid").is_in(list(TIMED_GRIDS)))
        if timed.is_empty():
            raise ReportError(f"kernel {task}: no timed results (smoke times are not for comparison)")
        latest = timed.sort("started_at").row(-1, named=True)["run_id"]  # one run: numbers of one machine
        timed = timed.filter(pl.col("run_id") == latest)
        declared = self._sizes(task)
        sizes = {key: point_size(p, declared) for key, p in timed.select("point_key", "point").unique().iter_rows()}
        point = max(sorted(sizes), key=lambda k: sizes[k])
        here = timed.filter(pl.col("point_key") == point)
        wide = here.pivot(on="metric", index=["method", "impl", "dtype", "device", "run_id"], values="value",
                          aggregate_function="first").sort(["dtype", "method", "impl"])
        lines = [f"At `{point}` (run {', '.join(f'`{r}`' for r in sorted(set(here['run_id'])))}):", "",
                 "| method | impl | dtype | time | peak memory | vs reference |", "|---|---|---|---|---|---|"]
        for r in wide.iter_rows(named=True):
            ref = wide.filter((pl.col("method") == r["method"]) & (pl.col("impl") == "reference")
                              & (pl.col("dtype") == r["dtype"]))
            versus = "—"
            if r["impl"] != "reference" and not ref.is_empty():
                base = ref.row(0, named=True)
                parts = []
                if base.get("time_ms") and r.get("time_ms"):
                    parts.append(_ratio(base["time_ms"] / r["time_ms"], "faster", "slower"))
                floor = analysis.MEMORY_FLOOR_BYTES.get(r["device"], 0)
                if base.get("peak_mem_bytes") is not None and r.get("peak_mem_bytes") is not None:
                    if min(base["peak_mem_bytes"], r["peak_mem_bytes"]) < floor:  # page-granular CPU memory
                        parts.append("memory below resolution")
                    else:
                        parts.append(_ratio(base["peak_mem_bytes"] / r["peak_mem_bytes"], "less memory", "more memory"))
                versus = ", ".join(parts) or "—"
            lines.append(f"| {r['method']} | {r['impl']} | {r['dtype']} | {_ms(r.get('time_ms'))} | "
                         f"{_mib(r.get('peak_mem_bytes'))} | {versus} |")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ documents

    def blocks(self, text: str) -> list[tuple[str, str]]:
        """(spec, stored body) of every block in ``text``."""
        return [(m["spec"], m["body"]) for m in _BLOCK.finditer(text)]

    def check(self, text: str) -> list[Mismatch]:
        return [Mismatch(spec, body, fresh) for spec, body in self.blocks(text)
                if body != (fresh := self.render(spec))]

    def update(self, text: str) -> str:
        return _BLOCK.sub(lambda m: f"{BEGIN.format(spec=m['spec'])}\n{self.render(m['spec'])}{END}", text)


def _ratio(x: float, up: str, down: str) -> str:
    return f"{x:.2f}x {up}" if x >= 1 else f"{1 / x:.2f}x {down}"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.3g} ms"


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value / 2**20:.0f} MiB"
