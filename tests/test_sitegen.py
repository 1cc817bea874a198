import re
import shutil

from effbench.rows import FAMILIES, MethodInfo, Result, Run
from effbench.sitegen import build, figure_payloads, method_page, task_page
from effbench.store import Store

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'


def test_site_from_a_real_smoke_run(smoke_db, tmp_path):
    db, shard = smoke_db
    statuses = {key.replace("\x1f", " "): done.status for key, done in shard.done.items()}
    assert not {k: s for k, s in statuses.items() if s in ("error", "oom", "timeout", "wrong")}
    assert list(statuses.values()).count("ok") > 0
    index = build(db, tmp_path / "site")
    site = tmp_path / "site"
    html = index.read_text()
    assert shard.run.run_id in html
    for family in FAMILIES:
        page = (site / f"{family}.html").read_text()
        assert "<table>" in page and 'href="task-' in page, family
    tasks = sorted(site.glob("task-*.html"))
    assert {p.name for p in tasks} == {task_page(t) for t in summary_tasks(db)}
    for page in tasks:
        figures = figure_payloads(page.read_text())
        assert figures and all(fig["data"] for fig in figures), page.name
    assert (site / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    lce = (site / task_page("loss/linear_cross_entropy")).read_text()
    names = {t.get("name") for fig in figure_payloads(lce) for t in fig["data"]}
    assert "linear_cross_entropy/chunked (cpu, float32)" in names  # device named on every trace
    assert "speedup over the method&#39;s reference [cpu, float32]" in lce
    assert "time vs memory at the largest point" in lce
    assert "numerical check" in lce and ">pass<" in lce
    # the leaderboard leads the page: every header with its unit and direction, the roofline fraction among them
    assert lce.index('id="leaderboard"') < lce.index("figure-data")
    assert re.search(r"<th>time \[ms, lower is better\]</th>", lce)
    assert re.search(r"<th>roofline fraction \[fraction, higher is better\]</th>", lce)
    assert "roofline: each case" in lce and "ceilings [cpu, float32]" in lce  # the roofline figure
    with Store(db, read_only=True) as store:
        fractions = store.query("SELECT value FROM results WHERE task = 'loss/linear_cross_entropy' AND impl = "
                                "'reference' AND metric = 'roofline_fraction'")["value"].to_list()
    assert fractions and all(0 < f for f in fractions)
    workload = (site / task_page("sampler/data_selection")).read_text()
    assert "training curves" in workload and "steps to target" in workload and "performance profile" in workload
    assert "significance against the task" in workload
    assert (site / method_page("loss/linear_cross_entropy", "linear_cross_entropy")).is_file()
    assert "arXiv:2411.09009" in (site / method_page("loss/linear_cross_entropy", "linear_cross_entropy")).read_text()
    assert re.search(r"linear_cross_entropy on cpu, float32, largest point [^:]+: (fastest correct implementation "
                     r"\w+|the reference is its fastest correct implementation)", html)  # a headline per method
    assert (site / "history.html").is_file()


def summary_tasks(db):
    with Store(db, read_only=True) as store:
        return store.query("SELECT DISTINCT task FROM results")["task"].to_list()


def test_history_marks_a_planted_regression(smoke_db, tmp_path):
    db = tmp_path / "history.duckdb"
    shutil.copyfile(smoke_db[0], db)
    with Store(db) as store:
        base = store.query("SELECT * FROM results WHERE metric IN ('time_ms', 'time_p20_ms', 'time_p80_ms') "
                           "AND seed = 0 AND status = 'ok' AND task = 'loss/linear_cross_entropy' "
                           "AND impl = 'chunked'")
        runs = store.query("SELECT * FROM runs")
        later = dict(runs.row(0, named=True), run_id="later", started_at="2030-01-01T00:00:00+00:00", ended_at=None)
        store.insert([Run(**{k: (str(v) if k == "started_at" else v) for k, v in later.items()})])
        store.insert([Result(**{**{k: r[k] for k in Result.__dataclass_fields__}, "run_id": "later",
                                "value": 2 * r["value"]}) for r in base.iter_rows(named=True)])
    build(db, tmp_path / "site")
    page = (tmp_path / "site" / "history.html").read_text()
    assert ">regression<" not in page  # smoke times are checks: never marked
    with Store(db) as store:
        store.query("UPDATE runs SET grid = 'cpu'")  # as if both runs were of a timed grid
    build(db, tmp_path / "site")
    page = (tmp_path / "site" / "history.html").read_text()
    assert page.count(">regression<") == base.filter(base["metric"] == "time_ms").height > 0


def test_smoke_db_has_every_family_with_real_numbers(smoke_db):
    db, _ = smoke_db
    with Store(db, read_only=True) as store:
        rows = store.query(
            "SELECT family, metric, min(value) AS lo FROM results WHERE status = 'ok' GROUP BY family, metric"
        )
    got = {(r["family"], r["metric"]): r["lo"] for r in rows.iter_rows(named=True)}
    for family in ("loss", "optimizer", "attention"):
        assert got[(family, "time_ms")] > 0
        assert got[(family, "rel_error")] >= 0
        assert (family, "peak_mem_bytes") in got
    assert max(v for (f, m), v in got.items() if m == "peak_mem_bytes") > 0
    assert 0 < got[("sampler", "final_metric")] <= 1
    assert ("sampler", "steps_to_target") in got or ("sampler", "final_loss") in got


def test_hostile_strings_are_escaped(smoke_db, tmp_path):
    db = tmp_path / "hostile.duckdb"
    shutil.copyfile(smoke_db[0], db)
    run = Run("evil", "2026-11-23T00:00:00+00:00", HOSTILE, HOSTILE, HOSTILE, "cpu", HOSTILE, HOSTILE, 1, "3",
              None, None, None, "0", "smoke", "effbench", HOSTILE)
    row = Result("evil", "loss", "loss/linear_cross_entropy", HOSTILE, HOSTILE, HOSTILE, "{}", "float32", "cpu", 0,
                 "time_ms", None, "ms", "error", HOSTILE, "", "")
    method = MethodInfo("loss", "loss/linear_cross_entropy", HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE)
    with Store(db) as store:
        store.insert([run, row, method])
    build(db, tmp_path / "site")
    for page in (tmp_path / "site").glob("*.html"):
        html = page.read_text()
        assert "<script>alert" not in html and "<img src=x" not in html, page.name
    lce = (tmp_path / "site" / task_page("loss/linear_cross_entropy")).read_text()
    assert "&lt;script&gt;alert" in lce  # shown, escaped
    assert (tmp_path / "site" / method_page("loss/linear_cross_entropy", HOSTILE)).is_file()  # a safe file name


def test_kernel_headlines_compare_implementations_of_one_method_only(tmp_path):
    """A sliding-window kernel is not a faster dense attention: each method gets its own headline."""
    db = tmp_path / "db.duckdb"
    run = Run("r1", "2026-12-01T00:00:00+00:00", None, None, "m", "cpu", None, None, 2, "3", None, None, None, "0",
              "cpu", "effbench", "effbench run")
    rows = []
    for method, impl, ms in (("dense", "reference", 10.0), ("dense", "sdpa", 5.0), ("sliding_window", "reference",
                             8.0), ("sliding_window", "flex", 1.0), ("causal", "reference", 10.0),
                             ("causal", "sdpa", 9.5), ("prefix_lm", "reference", 10.0), ("prefix_lm", "sdpa", 20.0)):
        for metric, value in (("time_ms", ms), ("peak_mem_bytes", 1e6), ("rel_error", 1e-7)):
            rows.append(Result("r1", "attention", "attention/masked_attention", method, impl, "N=64", '{"N":64}',
                               "float32", "cpu", 0, metric, value, "", "ok", "", "", ""))
    # prefix_lm's reference timed out on seed 1: not a correct implementation to name, its seed-0 time still the
    # speedups' baseline
    rows.append(Result("r1", "attention", "attention/masked_attention", "prefix_lm", "reference", "N=64",
                       '{"N":64}', "float32", "cpu", 1, "rel_error", None, "", "timeout", "planted", "", ""))
    with Store(db) as store:
        store.insert([run, *rows])
    from effbench import analysis
    from effbench.sitegen import headline

    lines = sorted(headline(analysis.open_results(db), "kernel"))
    assert len(lines) == 4
    # 1.05x is a ratio of two medians within the run-to-run noise (the history's 1.10x): not a winner
    assert lines[0] == ("causal on cpu, float32, largest point N=64: no implementation is clearly faster than the "
                        "reference (sdpa: 1.05x the reference's speed, within run-to-run noise), 9.5 ms.")
    assert lines[1].startswith("dense on cpu, float32, largest point N=64: fastest correct implementation sdpa, "
                               "2.00x the reference's speed")
    # 0.50x is slower, not noise
    assert lines[2].startswith("prefix_lm on cpu, float32, largest point N=64: fastest correct implementation sdpa, "
                               "0.50x the reference's speed")
    assert lines[3].startswith("sliding_window on cpu, float32, largest point N=64: fastest correct implementation "
                               "flex, 8.00x the reference's speed")


def test_two_builds_from_one_db_are_byte_identical_file_by_file(smoke_db, tmp_path):
    """Every file, CSVs and assets included, and every family page answers "which should I use?"."""
    db, _ = smoke_db
    sites = []
    for name in ("a", "b"):
        build(db, tmp_path / name)
        sites.append({p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
                      for p in sorted((tmp_path / name).rglob("*")) if p.is_file()})
    assert sites[0].keys() == sites[1].keys() and any(k.endswith(".csv") for k in sites[0])
    assert [k for k in sites[0] if sites[0][k] != sites[1][k]] == []
    loss = sites[0]["loss.html"].decode()
    assert "Which should I use?" in loss and "linear_cross_entropy (cpu" in loss and "Measured on cpu" in loss
