import shutil

from effbench.rows import MethodInfo, Result, Run
from effbench.sitegen import build, figure_payloads
from effbench.store import Store

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'


def test_site_from_a_real_smoke_run(smoke_db, tmp_path):
    db, summary = smoke_db
    assert not summary.failures, summary.failures
    assert summary.counts["ok"] > 0
    index = build(db, tmp_path / "site")
    html = index.read_text()
    assert summary.run.run_id in html
    for family in ("loss", "optimizer", "sampler", "attention"):
        page = (tmp_path / "site" / f"{family}.html").read_text()
        assert "<table>" in page
        figures = figure_payloads(page)
        assert figures and all(fig["data"] for fig in figures), family
    assert (tmp_path / "site" / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    loss_figures = figure_payloads((tmp_path / "site" / "loss.html").read_text())
    names = {t.get("name") for fig in loss_figures for t in fig["data"]}
    assert "linear_cross_entropy/chunked (cpu, float32)" in names  # device named on every trace


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
    loss = (tmp_path / "site" / "loss.html").read_text()
    assert "&lt;script&gt;alert" in loss  # shown, escaped
