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

import json
import shutil
from pathlib import Path
from typing import Any

import plotly
import polars as pl
from jinja2 import Environment, PackageLoader, select_autoescape

from effbench import analysis
from effbench.analysis import UNRECORDED_GRID, grid_rank, grid_slices
from effbench.metrics import from_json
from effbench.rows import FAMILIES
from effbench.site import points as grid_points
from effbench.site.colors import styles as site_styles
from effbench.site.common import (
    FAIL_STATUSES,
    HISTORY_THRESHOLD,
    Context,
    _points,
    _shared_devices,
    facet_values,
    method_page,
    task_page,
)
from effbench.site.kernel import _kernel_body
from effbench.site.overview import coverage, headline, history, kernel_build_table
from effbench.site.tables import Cell, to_csv
from effbench.site.workload import _workload_body
from effbench.store import DEFAULT_DB


def build(db: str | Path = DEFAULT_DB, out: str | Path = "site") -> Path:
    """Write the site to ``out``; returns the index page's path."""
    db, out = Path(db), Path(out)
    # each case's newest run of every grid: a page shows one grid at a time, never two grids' numbers as one
    frame = analysis.open_results(db, by_grid=True)
    if not frame.is_empty():  # the store returns rows in no fixed order: fix one, so that two builds agree
        frame = frame.sort([*analysis.CASE, "grid", "seed", "metric", "run_id"], nulls_last=True)
    task_frame = analysis.task_info(db)
    if not frame.is_empty() and not task_frame.is_empty() and "sizes" in task_frame.columns:  # declared sizes
        frame = frame.join(task_frame.select("task", "sizes"), on="task", how="left")
    # significance within each grid: two grids' seeds of one case are two samples, never one
    verdicts = {grid: analysis.significance(rows, task_frame) for grid, rows in grid_slices(frame)}
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
    styles = site_styles([*(frame.select("family", "method", "impl").unique().iter_rows() if not frame.is_empty()
                            else []),
                          *((m["family"], m["method"], impl) for m in method_frame.iter_rows(named=True)
                            for impl in (m["impls"] or "").split(",") if impl)])
    declared_rows = {r["task"]: r for r in task_frame.iter_rows(named=True)} if not task_frame.is_empty() else {}

    def context(rows: pl.DataFrame, task: str, task_rows: pl.DataFrame) -> Context:
        """``rows``: one grid's rows of ``task``, of its ``task_rows``."""
        row = declared_rows.get(task, {})
        sizes = grid_points.declared_sizes(row.get("sizes"))
        pts = _points(rows)
        return Context(styles, from_json(row.get("metrics")), grid_points.ordered(pts, sizes),
                       grid_points.labels(pts, sizes), grid_points.sizes_of(pts, sizes),
                       frozenset(_shared_devices(task_rows)),
                       not task_rows.is_empty() and task_rows["hardware"].n_unique() > 1)

    def tables_with_csv(page: str, sections: list[dict[str, Any]]) -> None:
        """Give every table of the page's grid sections a CSV file beside it (``<page>-<n>.csv``), and the
        first leaderboard table (the preferred grid's, where it has one) the id ``leaderboard``."""
        stem, n, boards_seen = page.removesuffix(".html"), 0, 0
        for body in sections:
            boards = body.get("leaderboard")
            for option in boards["options"] if boards else []:
                table = option["table"]
                n += 1
                table["id"] = "leaderboard" if boards_seen == 0 else f"leaderboard-{boards_seen}"
                boards_seen += 1
                table["csv"] = f"{stem}-{n}.csv"
                (out / table["csv"]).write_text(to_csv(table["columns"], table["rows"], table.get("extra")),
                                                encoding="utf-8")
            for table in body.get("tables", []):
                if table["rows"]:
                    n += 1
                    table["csv"] = f"{stem}-{n}.csv"
                    (out / table["csv"]).write_text(to_csv(table["columns"], table["rows"]), encoding="utf-8")

    def verdicts_of(grid: str, task: str, method: str | None = None) -> pl.DataFrame:
        mine = verdicts.get(grid, pl.DataFrame())
        if mine.is_empty():
            return mine
        mine = mine.filter(pl.col("task") == task)
        return mine if method is None else mine.filter(pl.col("method") == method)

    def problems_of(status: pl.DataFrame, ctx: Context) -> list[dict[str, Any]]:
        """The cases that are not ok (of ``status``, ``case_status``'s frame): one line per case and message,
        its seeds listed (not one per seed)."""
        bad = status.filter(pl.col("status") != "ok")
        grouped = bad.with_columns(pl.col("message").fill_null("")).group_by(
            ["status", "method", "impl", "point_key", "dtype", "device", "message"]).agg(
            pl.col("seed").sort()).sort(["status", "method", "impl", "point_key", "dtype", "device", "message"])
        return [{"status": r["status"], "method": r["method"], "impl": r["impl"],
                 "point": Cell(ctx.label(r["point_key"]), None, r["point_key"], r["point_key"]),
                 "dtype": r["dtype"], "device": r["device"], "seed": ", ".join(map(str, r["seed"])),
                 "message": r["message"]} for r in grouped.iter_rows(named=True)]

    def sections_of(task: str, task_rows: pl.DataFrame, kind: str, prefix: str,
                    method: str | None = None) -> list[dict[str, Any]]:
        """One section per grid of the task's rows (the preferred grid first): its own points, labels,
        leaderboard, headlines, figures and tables; ``method``: that method's rows only (its page), labelled
        as on the task page, in the grids it ran in."""
        sections = []
        for j, (grid, rows) in enumerate(grid_slices(task_rows)):
            ctx = context(rows, task, task_rows)
            if method is not None:
                rows = rows.filter(pl.col("method") == method)
                if rows.is_empty():
                    continue
            mine = prefix if j == 0 else f"{prefix}g{j}"  # a single grid's page keeps the ids it always had
            figures = method is None
            if kind == "workload":
                body = _workload_body(rows, db, task, mine, verdicts_of(grid, task, method), ctx,
                                      with_figures=figures, info=task_frame)
            else:
                body = _kernel_body(rows, mine, ctx, with_figures=figures)
            body.setdefault("advice", [])
            timed = analysis.timed_grid(None if grid == UNRECORDED_GRID else grid)
            status = analysis.case_status(rows)
            counts = dict(status["status"].value_counts().iter_rows()) if not status.is_empty() else {}
            body.update(grid=grid, timed=timed, recorded=grid != UNRECORDED_GRID,
                        cases=status.select(analysis.CASE).unique().height, status=counts,
                        failures=sum(counts.get(s, 0) for s in FAIL_STATUSES),
                        headline=headline(rows, kind, verdicts_of(grid, task), ctx.labels, ctx.order,
                                          ctx.named_hardware, ctx.several_machines)
                        if figures else [])
            if figures:
                problems = problems_of(status, ctx)
                body["tables"].append({"title": "cases that are not ok (one line per case and message, its seeds "
                                                "listed)", "columns": ["status", "method", "impl", "point", "dtype",
                                                                       "device", "seed", "message"],
                                       "rows": problems})
            sections.append(body)
        return sections

    families, task_infos, task_sections = [], {}, {}
    for i, task in enumerate(tasks):
        task_rows = frame.filter(pl.col("task") == task) if not frame.is_empty() else frame
        kind = "workload" if not task_rows.is_empty() and task_rows.filter(
            pl.col("metric") == "final_metric").height else "kernel"
        sections = task_sections[task] = sections_of(task, task_rows, kind, f"t{i}")
        first = sections[0] if sections else {}
        task_infos[task] = {"name": task, "kind": kind, "page": task_page(task),
                            # counts per grid: a case of two grids is two results, never one count
                            "status": [{"grid": s["grid"], "counts": s["status"]} for s in sections],
                            # the overview and family pages speak for the preferred grid (the task page has all)
                            "headline": first.get("headline", []), "advice": first.get("advice", []),
                            "grid": first.get("grid", ""), "grids": [s["grid"] for s in sections],
                            "target": targets.get(task, "") if kind == "workload" else "",
                            "description": about.get(task, ""),
                            "failures": [{"grid": s["grid"], "n": s["failures"]} for s in sections
                                         if s["failures"]]}
    for family in FAMILIES:
        infos = [task_infos[t] for t in tasks if t.split("/")[0] == family]
        by_grid: dict[str, dict[str, int]] = {}
        for info in infos:
            for part in info["status"]:
                mine = by_grid.setdefault(part["grid"], {})
                for s, n in part["counts"].items():
                    mine[s] = mine.get(s, 0) + n
        families.append({"name": family, "tasks": infos,
                         "status": [{"grid": g, "counts": c} for g, c in sorted(
                             by_grid.items(), key=lambda item: grid_rank(None if item[0] == UNRECORDED_GRID
                                                                         else item[0]))]})

    runs = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in run_frame.head(30).iter_rows(named=True)]
    render("index.html", "index.html", page="index", families=families, runs=runs,
           coverage=coverage(frame, method_frame))

    for task in tasks:
        info = task_infos[task]
        task_rows = frame.filter(pl.col("task") == task) if not frame.is_empty() else frame
        sections = task_sections[task]
        task_methods = [
            {**{k: ("" if v is None else str(v)) for k, v in m.items()}, "page": method_page(task, m["method"])}
            for m in method_frame.filter(pl.col("task") == task).iter_rows(named=True)
        ]
        tables_with_csv(info["page"], sections)
        render(info["page"], "task.html", page=task.split("/")[0], task=info, methods=task_methods,
               sections=sections, facets=facet_values(sections))
        for m in task_methods:
            method_sections = sections_of(task, task_rows, info["kind"], "m", method=m["method"])
            tables_with_csv(m["page"], method_sections)
            render(m["page"], "method.html", page=task.split("/")[0], task=info, method=m, sections=method_sections,
                   facets=facet_values(method_sections), builds=kernel_build_table(builds, task, m["method"]))

    for family in families:  # after the task pages: each task's advice comes from its page's numbers
        render(f"{family['name']}.html", "family.html", page=family["name"], family=family)
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
