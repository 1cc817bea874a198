"""Workload verdicts (issue 18): tuning on its own seed and in its own job, one (method, impl) against one
baseline (method, impl) over the same scored seeds, failures as misses, a resolution, corrected p-values."""

import json
import math

import polars as pl
import pytest

from effbench import analysis, workloads
from effbench.rows import TuningDone, TuningTrial, from_json_line
from effbench.run.plan import make_config, plan
from effbench.run.session import run_cases
from effbench.run.shards import read_shard
from effbench.stats import adjust, compare
from effbench.store import Store

CONVERGENCE = json.dumps([["final_metric", True], ["steps_to_target", False]])


def tasks_frame(baseline="adamw", impl="reference", compared=CONVERGENCE):
    return pl.DataFrame([{"family": "optimizer", "task": "optimizer/convergence", "kind": "workload",
                          "baseline": baseline, "baseline_impl": impl, "compare": compared, "target": "fixed"}])


def rows(method, impl, values, metric="final_metric", statuses=None, point="p1"):
    statuses = statuses or ["ok"] * len(values)
    return [{"task": "optimizer/convergence", "method": method, "impl": impl, "point_key": point, "dtype": "float32",
             "device": "cpu", "hardware": "AMD EPYC", "seed": seed, "metric": metric, "value": value,
             "status": status}
            for seed, (value, status) in enumerate(zip(values, statuses, strict=True))]


def verdicts(*groups, compared=CONVERGENCE, **kwargs):
    frame = pl.DataFrame([r for g in groups for r in g], schema_overrides={"value": pl.Float64})
    return analysis.significance(frame, tasks_frame(compared=compared), **kwargs)


FINAL_ONLY = json.dumps([["final_metric", True]])


def test_a_baseline_with_two_impls_is_one_baseline_n_vs_n_seeds():
    table = verdicts(rows("adamw", "reference", [0.90, 0.91, 0.92]), rows("adamw", "torch_fused", [0.90, 0.91, 0.92]),
                     rows("lion", "reference", [0.80, 0.81, 0.82]), compared=FINAL_ONLY)
    lion = table.filter(pl.col("method") == "lion").row(0, named=True)
    assert lion["seeds"] == 3 and lion["baseline"] == "adamw/reference"
    assert "over 3 vs 3 seeds" in lion["message"]  # never 3 vs 6: the fused AdamW is not more seeds
    fused = table.filter(pl.col("impl") == "torch_fused").row(0, named=True)
    assert fused["p_value"] == 1.0 and not fused["significant"]  # equal seeds: no difference


def test_adjusted_p_values_by_hand():
    raw = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, max(0.06, 0.04)
    assert adjust(raw, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 -> 0.02, 0.02, 0.04, 0.04 (monotone from the top)
    assert adjust(raw, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    for method in ("holm", "bh"):
        assert all(q >= p for q, p in zip(adjust(raw, method), raw, strict=True))
    assert adjust([0.5, 0.9], "bh") == pytest.approx([0.9, 0.9]) and adjust([], "holm") == []
    with pytest.raises(ValueError, match="unknown correction"):
        adjust(raw, "bonferroni-ish")


def test_significant_uses_the_adjusted_p_per_task_and_metric():
    base = rows("adamw", "reference", [0.50, 0.51, 0.52, 0.53, 0.54])
    better = rows("lion", "reference", [0.60, 0.61, 0.62, 0.63, 0.64])  # complete separation: p 0.0079
    overlapping = rows("sgd_momentum", "reference", [0.505, 0.515, 0.525, 0.535, 0.545])  # interleaved
    raw = verdicts(base, better, overlapping, compared=FINAL_ONLY, correction="holm")
    lion = raw.filter(pl.col("method") == "lion").row(0, named=True)
    assert lion["p_value"] == pytest.approx(2 / 252)  # exact: 2 of the C(10, 5) orderings are as extreme
    assert lion["p_adjusted"] == pytest.approx(2 * 2 / 252)  # Holm over the family of two comparisons
    assert lion["significant"] and lion["better"] and not lion["worse"]
    sgd = raw.filter(pl.col("method") == "sgd_momentum").row(0, named=True)
    assert sgd["p_value"] > 0.5 and sgd["p_adjusted"] >= sgd["p_value"] and not sgd["significant"]
    # the same numbers under many more comparisons in the family: significance is corrected away
    many = [rows(f"m{i}", "reference", [0.50, 0.51, 0.52, 0.53, 0.54]) for i in range(40)]
    crowded = verdicts(base, better, *many, compared=FINAL_ONLY, correction="holm")
    assert not crowded.filter(pl.col("method") == "lion")["significant"].item()


def test_differences_within_the_resolution_are_never_significant():
    ulp = rows("adamw", "reference", [1.0] * 5)
    plus_ulp = rows("lion", "reference", [1.0 + 2.2e-16] * 5)  # deterministic, one ulp apart: p was 0
    one = verdicts(ulp, plus_ulp, compared=FINAL_ONLY).row(0, named=True)
    assert one["p_value"] == 1.0 and not one["significant"]
    tiny = rows("lion", "reference", [1.0 + 3e-5 + i * 1e-7 for i in range(5)])  # separated, under 1e-4
    two = verdicts(ulp, tiny, compared=FINAL_ONLY).row(0, named=True)
    assert two["below_resolution"] and not two["significant"]
    assert analysis.RESOLUTION["final_metric"] == 1e-4


def test_a_failing_seed_counts_as_a_miss_and_is_reported():
    base = rows("adamw", "reference", [0.50, 0.51, 0.52, 0.53, 0.54])
    # better on the seeds it finished, but two seeds diverged (a workload case that is not ok)
    flaky = rows("lion", "reference", [0.90, None, 0.91, None, 0.92], statuses=["ok", "wrong", "ok", "error", "ok"])
    row = verdicts(base, flaky, compared=FINAL_ONLY).row(0, named=True)
    assert row["seeds"] == 5 and row["failed"] == 2 and row["failed_baseline"] == 0
    # not "better on the 3 seeds it finished"
    assert "(2 vs 0 failed or missed the target)" in row["message"] and not row["significant"]
    broken = rows("lion", "reference", [None] * 5, statuses=["error"] * 5)
    worst = verdicts(base, broken, compared=FINAL_ONLY).row(0, named=True)
    assert worst["failed"] == 5 and worst["worse"] and worst["delta"] == -math.inf
    # a missed target is a miss of steps to target (lower is better: it ranks above every number)
    steps = json.dumps([["steps_to_target", False]])
    reached = rows("adamw", "reference", [40.0, 42.0, 44.0, 46.0, 48.0], metric="steps_to_target")
    missed = rows("lion", "reference", [10.0, None, None, None, None], metric="steps_to_target")
    row = verdicts(reached, missed, compared=steps).row(0, named=True)
    assert row["failed"] == 4 and row["delta"] == math.inf and not row["better"]


def test_compare_is_a_rank_test_with_known_answers():
    result = compare([1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0], higher_is_better=False)
    assert result.p_value == pytest.approx(2 / 252) and result.better(False) and result.delta == -5.0
    assert compare([2.0, 2.0], [2.0, 2.0]).p_value == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        compare([1.0], [1.0, 2.0])


def test_a_scored_case_given_its_tuning_never_tunes_inside_itself():
    with workloads.preset({}), pytest.raises(RuntimeError, match="no tuned value"):
        workloads.tuned_lr(("t", "m", "i"), {"lrs": "0.1,1.0"}, lambda lr, seed: None)
    assert workloads.TUNING_SEED >= 1000  # above every scored seed the runner accepts


def _lines(shard):
    return [from_json_line(line) for line in shard.read_text().splitlines()]


def test_tuning_runs_once_per_group_on_its_own_seed_and_is_stored(registry, tmp_path):
    config = make_config("smoke", "cpu", seeds=2, all_points=True)
    cases = [c for c in plan(registry, config, task="convergence", method="adamw,sgd_momentum", impl="reference")
             if c.point["data"] in ("rosenbrock", "quadratic_2d")]  # quadratic_2d's schedule is refined
    seen = []
    summary = run_cases(registry, cases, config, tmp_path / "runs", on_case=lambda c, r: seen.append((c, r)))
    assert {r.status for _, r in seen} == {"ok"} and len(seen) == 8
    records = _lines(summary.shard)
    jobs = [r for r in records if isinstance(r, TuningDone)]
    trials = [r for r in records if isinstance(r, TuningTrial)]
    assert len(jobs) == 4 and all(j.status == "ok" for j in jobs)  # 2 methods x 2 points, not per seed
    assert {t.seed for t in trials} == {workloads.TUNING_SEED}  # never a scored seed (0, 1)
    for job in jobs:
        mine = [t for t in trials if "\x1f".join((t.task, t.method, t.impl, t.point_key, t.dtype, t.device))
                == job.group]
        lrs = [t for t in mine if t.param == "lr"]
        assert len(lrs) == 5 and sum(t.chosen for t in lrs) == 1  # the point's lr grid, one winner
        if "refined" in job.group:  # the linear-decay prior run tunes its own lr, stored apart
            assert sum(t.chosen for t in mine if t.param == "prior_lr") == 1
        chosen = next(t.value for t in lrs if t.chosen)
        scored = [r for c, r in seen if c.method in job.group and c.point_key in job.group]
        assert len(scored) == 2 and {r.metrics["lr"] for r in scored} == {chosen}  # every seed: the tuned lr
    refined_jobs = [j for j in jobs if "refined" in j.group]
    assert all(any(t.param == "refined_prior_lr" for t in trials if t.method in j.group) for j in refined_jobs)
    with Store(tmp_path / "db.duckdb") as store:
        store.ingest(summary.shard)
        stored = store.query("SELECT seed, param, chosen FROM tuning")
        assert stored.height == len(trials) and set(stored["seed"]) == {workloads.TUNING_SEED}
    db = tmp_path / "db.duckdb"
    table = analysis.significance(analysis.open_results(db), analysis.task_info(db))
    assert set(table["method"]) == {"sgd_momentum"} and set(table["baseline"]) == {"adamw/reference"}
    assert all("over 2 vs 2 seeds" in m for m in table["message"])
    # the site shows the verdicts and where the targets come from
    from effbench import sitegen

    sitegen.build(db, tmp_path / "site")
    page = (tmp_path / "site" / sitegen.task_page("optimizer/convergence")).read_text()
    assert "Mann-Whitney U vs adamw/reference over 2 vs 2 seeds" in page and "at a glance" in page
    glance = analysis.verdict_table(analysis.open_results(db), analysis.task_info(db), "optimizer/convergence")
    assert set(zip(glance["method"], glance["points"], strict=True)) == {("adamw", 2), ("sgd_momentum", 2)}
    assert "Targets: metric &gt;= point[&#39;target&#39;], fixed constants" in page and "by construction" in page
    assert registry.tasks["optimizer/convergence"].description in page  # what the task measures, from the DB
    assert "target 2.4" in page  # the curves draw the fixed target they are counted to


def test_a_resumed_run_reuses_its_tuning(registry, tmp_path):
    config = make_config("smoke", "cpu", seeds=2)
    cases = [c for c in plan(registry, config, task="convergence", method="adamw", impl="reference")
             if c.point["data"] == "rosenbrock"]
    stop = []

    def interrupt(case, result):
        stop.append(case)
        raise KeyboardInterrupt  # after the first seed is in the shard

    with pytest.raises(KeyboardInterrupt):
        run_cases(registry, cases, config, tmp_path, in_process=True, on_case=interrupt)
    shard = next(tmp_path.glob("*.jsonl"))
    contents = read_shard(shard)
    assert len(contents.done) == 1 and len(contents.tuning) == 1
    run_cases(registry, cases, config, tmp_path, in_process=True, resume=contents)
    records = _lines(shard)
    assert sum(isinstance(r, TuningDone) for r in records) == 1  # not tuned again for the second seed
    assert read_shard(shard).complete


def test_two_site_builds_from_one_db_are_identical(registry, tmp_path):
    """The site is a function of the DB: two builds give the same bytes (figure order included)."""
    from effbench import sitegen

    config = make_config("smoke", "cpu", seeds=2)
    cases = [c for c in plan(registry, config, task="convergence", method="adamw,sgd_momentum", impl="reference")
             if c.point["data"] == "rosenbrock"]
    summary = run_cases(registry, cases, config, tmp_path / "runs", in_process=True)
    db = tmp_path / "db.duckdb"
    with Store(db) as store:
        store.ingest(summary.shard)
    pages = []
    for out in ("a", "b"):
        sitegen.build(db, tmp_path / out)
        pages.append({p.name: p.read_bytes() for p in (tmp_path / out).glob("*.html")})
    assert pages[0] == pages[1] and len(pages[0]) > 5


def test_point_labels_name_what_differs():
    from effbench.site.common import point_labels

    frame = pl.DataFrame({"point_key": ["a", "b"], "point": [
        json.dumps({"data": "digits", "model": "mlp", "steps": 200, "lrs": "0.1,1.0"}),
        json.dumps({"data": "digits_label_noise", "model": "mlp", "steps": 200, "lrs": "0.1,1.0"})]})
    assert point_labels(frame) == {"a": "data=digits", "b": "data=digits_label_noise"}
    one = frame.head(1)
    assert point_labels(one) == {"a": "a"}  # a single point: nothing differs, the key says it all


def test_a_skipped_point_is_neither_compared_nor_a_miss():
    base = rows("adamw", "reference", [0.50, 0.51, 0.52, 0.53, 0.54])
    skipped = rows("lion", "reference", [None] * 5, statuses=["skipped"] * 5)  # lion does not apply here
    assert verdicts(base, skipped, compared=FINAL_ONLY).is_empty()
    frame = pl.DataFrame([*base, *skipped, *rows("adamw", "reference", [0.6] * 5, point="p2"),
                          *rows("lion", "reference", [0.7] * 5, point="p2")], schema_overrides={"value": pl.Float64})
    table = analysis.verdict_table(frame, tasks_frame(compared=FINAL_ONLY), "optimizer/convergence")
    lion = table.filter(pl.col("method") == "lion").row(0, named=True)
    assert lion["points"] == 1 and lion["failed_seeds"] == 0  # only p2, where it ran
