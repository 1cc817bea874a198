"""Print the README's workload tables (markdown) from a DB: one per workload task, from
``analysis.verdict_table`` (solved points, performance profile, significant wins and losses against the
baseline after the Benjamini-Hochberg correction), with each task's target provenance and its runs.
With ``--matrix``, one table of methods x points instead: median steps to the target / median final
metric, "*" where the difference from the baseline is significant, "miss" where a seed missed the target.

    python scripts/workload_tables.py results/effbench.duckdb [task ...]
    python scripts/workload_tables.py results/effbench.duckdb --matrix sampler/data_selection
"""

from __future__ import annotations

import json
import sys

import polars as pl

from effbench import analysis


def fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def main(db: str, tasks: list[str]) -> None:
    frame = analysis.open_results(db)
    info = analysis.task_info(db)
    workload = [r["task"] for r in info.iter_rows(named=True) if r["kind"] == "workload"]
    for task in tasks or workload:
        table = analysis.verdict_table(frame, info, task)
        if table.is_empty():
            continue
        mine = frame.filter((pl.col("task") == task) & (pl.col("seed") >= 0))
        runs = ", ".join(sorted(set(mine["run_id"])))
        seeds = mine.group_by(["method", "impl", "point_key"]).agg(pl.col("seed").n_unique())["seed"]
        row = info.filter(pl.col("task") == task).row(0, named=True)
        print(f"### {task}\n\nruns {runs}; {seeds.min()}-{seeds.max()} scored seeds per case; baseline "
              f"{row['baseline']}/{row['baseline_impl']}; targets: {row['target']}.\n")
        compared = [m for m in json.loads(row["compare"]) if f"{m[0]}_better" in table.columns]
        solved = table["solved"].is_not_null().any()
        header = ["method", *(["solved", "ρ(1)", "ρ(2)"] if solved else [])]
        header += [f"{m.replace('_', ' ')}: sig. better / worse" for m, _ in compared]
        header += ["final metric (median over points)", "failed seeds"]
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for r in table.iter_rows(named=True):
            name = r["method"] + ("" if r["impl"] == "reference" else f" ({r['impl']})")
            base = (r["method"], r["impl"]) == (row["baseline"], row["baseline_impl"])
            cells = [name + (" (baseline)" if base else "")]
            if solved:
                cells += [f"{r['solved']}/{r['points']}", fmt(r.get("rho(1)")), fmt(r.get("rho(2)"))]
            for metric, _ in compared:
                better = r.get(f"{metric}_better")
                cells.append("—" if base or better is None else f"{better} / {r[f'{metric}_worse']}")
            cells += [f"{r['final_metric_median']:.4f}" if r["final_metric_median"] is not None else "—",
                      str(r["failed_seeds"])]
            print("| " + " | ".join(cells) + " |")
        print()


def matrix(db: str, task: str) -> None:
    frame = analysis.open_results(db).filter((pl.col("task") == task) & (pl.col("seed") >= 0))
    verdicts = analysis.significance(frame, analysis.task_info(db))
    marked = {(r["method"], r["impl"], r["point_key"], r["metric"]) for r in verdicts.iter_rows(named=True)
              if r["significant"]} if not verdicts.is_empty() else set()
    summary = analysis.workload_summary(frame)
    status = analysis.case_status(frame)
    points = list(dict.fromkeys(frame.sort("point_key")["point_key"]))
    print("| method | " + " | ".join(f"p{i + 1}" for i in range(len(points))) + " |\n|" + "---|" * (len(points) + 1))
    for (method, impl), part in summary.sort(["method", "impl"]).group_by(["method", "impl"], maintain_order=True):
        cells = []
        for point in points:
            row = part.filter(pl.col("point_key") == point)
            states = set(status.filter((pl.col("method") == method) & (pl.col("impl") == impl)
                                       & (pl.col("point_key") == point))["status"])
            if row.is_empty() or states == {"skipped"}:
                cells.append("skipped" if states == {"skipped"} else "—")
                continue
            r = row.row(0, named=True)
            reached = r["seeds_reaching_target"] == r["seeds"]
            steps = f"{r['steps_to_target_median']:.0f}" if reached else "miss"
            steps += "*" if (method, impl, point, "steps_to_target") in marked else ""
            final = f"{r['final_metric_mean']:.3f}" + ("*" if (method, impl, point, "final_metric") in marked else "")
            cells.append(f"{steps} / {final}")
        print(f"| {method}{'' if impl == 'reference' else f' ({impl})'} | " + " | ".join(cells) + " |")
    print()
    for i, point in enumerate(points):
        print(f"p{i + 1}: {point}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if len(sys.argv) == 4 and sys.argv[2] == "--matrix":
        matrix(sys.argv[1], sys.argv[3])
    else:
        main(sys.argv[1], sys.argv[2:])
