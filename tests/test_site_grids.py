"""The site shows one grid at a time: a smoke check run after a cpu timing run of the same case hides nothing,
each grid's page section has its own leaderboard, headlines and notes, and the page-wide selectors pick the grid,
the machine and the dtype (in headless Chromium)."""

import csv
import functools
import http.server
import re
import shutil
import threading

import polars as pl
import pytest

from effbench import analysis
from effbench.rows import Result, Run
from effbench.sitegen import build, method_page, task_page
from effbench.store import Store
from tests.test_site_browser import CHROMIUM, FLAGS, VISIBLE_PLOTS, QuietHandler, _playwright

TASK = "loss/linear_cross_entropy"


OTHER_CPU = "Older CPU B"


def _older_cpu_runs(db, scale=3.0):
    """Two runs of the cpu grid, older than the smoke run, of the same cases of ``TASK``, every time ``scale``
    times the smoke run's: one on the smoke run's own machine (the smoke run's cases would hide its cases in
    a view of the newest run per case), one on another CPU model (the cpu grid spans two machines)."""
    with Store(db) as store:
        smoke = store.query("SELECT * FROM runs").row(0, named=True)
        rows = store.query(f"SELECT * FROM results WHERE task = '{TASK}'")
        for n, cpu in enumerate((rows["node_hardware"][0], OTHER_CPU)):
            run_id = f"older-cpu-{n}"
            store.insert([Run(**{**{k: smoke[k] for k in Run.__dataclass_fields__}, "run_id": run_id, "grid": "cpu",
                                 "cpu_name": cpu, "started_at": f"2001-01-0{n + 1}T00:00:00+00:00",
                                 "ended_at": None})])
            store.insert([Result(**{**{k: r[k] for k in Result.__dataclass_fields__}, "run_id": run_id,
                                    "node_hardware": cpu,
                                    "value": r["value"] * scale if r["metric"].startswith("time")
                                    and r["value"] is not None else r["value"]})
                          for r in rows.iter_rows(named=True)])
    return rows


def _sections(html):
    return re.findall(r'<div class="grid-section" data-section="(\d+)" data-grid="([^"]+)"( hidden)?>(.*?)'
                      r'(?=<div class="grid-section"|<details><summary>Methods|</main>)', html, re.S)


@pytest.fixture(scope="module")
def two_grids(smoke_db, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grids")
    db = tmp / "grids.duckdb"
    shutil.copyfile(smoke_db[0], db)
    smoke_rows = _older_cpu_runs(db)
    with Store(db) as store:  # a failure in the smoke grid only: the cpu grid's numbers of that case stay ok
        store.query(f"UPDATE results SET status = 'error', message = 'planted' WHERE task = '{TASK}' AND "
                    "impl = 'reference' AND run_id NOT LIKE 'older-cpu-%'")
    build(db, tmp / "site")
    return db, tmp / "site", smoke_rows


def test_a_newer_smoke_run_never_hides_an_older_cpu_run(two_grids):
    db, out, smoke_rows = two_grids
    mine = smoke_rows["node_hardware"][0]
    case = ((pl.col("task") == TASK) & (pl.col("metric") == "time_ms") & (pl.col("impl") == "reference")
            & (pl.col("hardware") == mine))
    latest = analysis.open_results(db).filter(case)
    assert set(latest["grid"]) == {"smoke"}  # the store's latest view: the newest run only, the cpu one hidden
    by_grid = analysis.open_results(db, by_grid=True).filter(case)
    assert set(by_grid["grid"]) == {"smoke", "cpu"}
    smoke_ms = smoke_rows.filter((pl.col("metric") == "time_ms") & (pl.col("impl") == "reference")
                                 & pl.col("value").is_not_null())["value"].sort().to_list()
    cpu_ms = by_grid.filter((pl.col("grid") == "cpu") & pl.col("value").is_not_null())["value"].sort().to_list()
    assert smoke_ms and cpu_ms == pytest.approx([3 * v for v in smoke_ms])


def test_each_grid_has_its_own_section_leaderboard_and_notes(two_grids):
    db, out, smoke_rows = two_grids
    mine = smoke_rows["node_hardware"][0]
    html = (out / task_page(TASK)).read_text()
    choice = re.search(r'<select id="grid-choice">(.*?)</select>', html, re.S).group(1)
    labels = re.findall(r'<option value="(\d)">([^<]+)</option>', choice)
    # the timed grid first (the page opens on it), the check second and said to be one
    assert [g.split(" ")[0] for _, g in labels] == ["cpu", "smoke"], labels
    assert "a check, not timings" in labels[1][1] and "a check" not in labels[0][1]
    sections = _sections(html)
    assert [(s[0], s[1], s[2]) for s in sections] == [("0", "cpu", ""), ("1", "smoke", " hidden")]
    cpu, smoke = sections[0][3], sections[1][3]
    assert "checks that every method runs" in smoke and "checks that every method runs" not in cpu
    # failures are counted in their own grid: the alarm, the overview's badge and the coverage say which
    assert "case(s) of the smoke grid failed" in smoke and 'class="alarm"' not in cpu
    index = (out / "index.html").read_text()
    assert re.search(r"\d+ failing case\(s\) in grid smoke", index) and "in grid cpu" not in index
    assert re.search(r"cpu: ok \d+; smoke: error \d+", index)  # linear_cross_entropy/reference's coverage
    assert 'id="leaderboard"' in cpu and 'id="leaderboard"' not in smoke  # one id, the shown grid's
    assert "Headlines <small>(grid cpu)</small>" in cpu and "Headlines <small>(grid smoke)</small>" in smoke
    # the cpu grid ran on two machines: its labels name them
    assert f"cpu ({mine}), float32" in cpu and f"cpu ({OTHER_CPU}), float32" in cpu
    # one machine reads the same in every grid's section: the smoke grid's names it too (not "cpu" alone)
    assert f"cpu ({mine}), float32" in smoke and OTHER_CPU not in smoke
    # the two grids' leaderboards: the cpu one's times are three times the smoke one's, case by case
    def times(section):
        href = re.search(r'<a href="([^"]+\.csv)" download>', section).group(1)
        with (out / href).open() as f:
            table = list(csv.DictReader(f))
        column = next(c for c in table[0] if c.startswith("time ["))
        return {(r["method"], r["impl"], r["point_key"]): float(r[column]) for r in table if r[column]}
    cpu_times, smoke_times = times(cpu), times(smoke)
    shared = set(cpu_times) & set(smoke_times)
    assert shared and all(cpu_times[k] == pytest.approx(3 * smoke_times[k]) for k in shared)
    # the page-wide selectors: machines across the grids, one dtype stated, not offered
    machines = re.search(r'<select class="facet" data-facet="machine">(.*?)</select>', html, re.S).group(1)
    offered = re.findall(r'<option value="([^"]*)">', machines)
    assert offered == sorted(["", f"cpu ({mine})", f"cpu ({OTHER_CPU})"])
    assert "dtype: <strong>float32</strong>" in html
    # the overview speaks for the preferred grid: its headline is the cpu grid's, not the smoke check's
    line = re.search(r"linear_cross_entropy on cpu \([^)]+\)[^<]*", index)
    assert line and "grid smoke" not in line.group(0)
    assert "(kernel task, grid cpu; the task page also has smoke)" in index
    # a method's page has the same sections, labelled as on its task's page
    method = (out / method_page(TASK, "linear_cross_entropy")).read_text()
    assert [s[1] for s in _sections(method)] == ["cpu", "smoke"] and 'id="grid-choice"' in method
    assert f"cpu ({OTHER_CPU}), float32" in method
    # a task measured by one grid states it
    other = (out / task_page("loss/contrastive")).read_text()
    assert '<strong id="grid-only">smoke</strong>' in other and 'id="grid-choice"' not in other


def test_grid_and_machine_selectors_in_a_browser(two_grids):
    sync_playwright = _playwright()
    _, out, _ = two_grids
    handler = functools.partial(QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/{task_page(TASK)}", wait_until="load")
            shown = "Array.from(document.querySelectorAll('div.grid-section'), s => s.hidden)"
            assert page.evaluate(shown) == [False, True]
            page.select_option("#grid-choice", "1")
            assert page.evaluate(shown) == [True, False]
            # the smoke section's figures are drawn once shown
            page.wait_for_function(f"({VISIBLE_PLOTS}) > 0 && Array.from(document.querySelectorAll('div.plot'))"
                                   ".filter(d => !d.closest('[hidden]') && !d.closest('details:not([open])'))"
                                   ".every(d => d.querySelector('.main-svg'))", timeout=30_000)
            page.select_option("#grid-choice", "0")
            page.select_option("select.facet[data-facet=machine]", f"cpu ({OTHER_CPU})")
            # every selector of the cpu grid now offers machine B's choices only, and shows one of them
            offered = page.evaluate("Array.from(document.querySelectorAll('div.grid-section[data-section=\"0\"] "
                                    "select.switch'), s => [Array.from(s.options).filter(o => !o.disabled).map("
                                    "o => o.dataset.machine), s.selectedOptions[0].dataset.machine])")
            assert offered and all(set(enabled) == {f"cpu ({OTHER_CPU})"} and chosen == f"cpu ({OTHER_CPU})"
                                   for enabled, chosen in offered), offered
            # Back after another page: the page shows what its restored selectors say
            page.select_option("#grid-choice", "1")
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html", wait_until="load")
            page.go_back(wait_until="load")
            state = page.evaluate("[document.getElementById('grid-choice').value, Array.from(document.querySelectorAll("
                                  "'div.grid-section'), s => s.hidden)]")
            assert state in (["1", [True, False]], ["0", [False, True]]), state
            page.select_option("#grid-choice", "0")
            page.select_option("select.facet[data-facet=machine]", "")
            enabled = page.evaluate("Array.from(document.querySelectorAll('select.switch option'))"
                                    ".every(o => !o.disabled)")
            assert enabled
            browser.close()
    finally:
        server.shutdown()
    assert not errors, errors
