"""The site built from the committed cpu runs, read as a new user would: bounded pages that open on a sortable
leaderboard, honest numbers, distinct traces, every metric with its direction.

Built once, in one test (a session fixture would be built once per xdist worker): from a deterministic subset of
``results/runs`` (the smallest shard holding each task: every task, both CPU models, ~20 of the 71 MB;
ingest and build take ~25 s on a 2-core machine where all shards take ~60 s).
"""

import functools
import http.server
import re
import threading
from pathlib import Path

import pytest

from effbench.sitegen import build, figure_payloads, task_page
from tests.conftest import ROOT
from tests.test_site_browser import CHROMIUM, FLAGS, VISIBLE_PLOTS, QuietHandler, _playwright

SCREEN, SCREENS = 900, 8  # every task page within 8 screens of 900 px at 1400 px wide
# "inf", "-inf", "Infinity" as a value (not "NaN/Inf" in a rule's text), or a ratio like 4191.00x
INF = re.compile(r"(?<![A-Za-z/])-?(inf|infinity)(?![A-Za-z])|[0-9]{4,}\.[0-9]+[x×]", re.I)


def committed_shards(runs: Path) -> list[Path]:
    """The smallest shard holding each task (its methods are listed in the shard's first lines)."""
    best: dict[str, Path] = {}
    for shard in sorted(runs.glob("*.jsonl")):
        with shard.open("rb") as f:
            head = f.read(1 << 16).decode("utf-8", "replace")
        for task in sorted(set(re.findall(r'"type":"method","family":"[^"]*","task":"([^"]+)"', head))):
            if task not in best or shard.stat().st_size < best[task].stat().st_size:
                best[task] = shard
    return sorted(set(best.values()))


def _traces_look_distinct(fig: dict) -> list[tuple]:
    """(colour, dash, marker) of the figure's legend traces that another legend trace shares."""
    seen, twice = set(), []
    for trace in fig["data"]:
        if trace.get("showlegend") is False or trace.get("type") in ("bar", "heatmap"):
            continue
        line, marker = trace.get("line", {}), trace.get("marker", {})
        mode = trace.get("mode", "lines+markers")
        look = (line.get("color") or marker.get("color"), line.get("dash", "solid") if "lines" in mode else None,
                marker.get("symbol", "circle") if "markers" in mode else None)
        if look in seen:
            twice.append((look, trace.get("name")))
        seen.add(look)
    return twice


def test_the_committed_runs_site_answers_which_method_at_what_cost(tmp_path):
    from effbench.cli.results import _ingest_into

    shards = committed_shards(ROOT / "results" / "runs")
    if not shards:
        pytest.skip("no committed runs")
    db, out = tmp_path / "committed.duckdb", tmp_path / "site"
    _ingest_into(db, tuple(shards))
    build(db, out)

    pages = {p.name: p.read_text(encoding="utf-8") for p in sorted(out.glob("*.html"))}
    tasks = sorted(n for n in pages if n.startswith("task-"))
    assert len(tasks) >= 10
    # honest numbers: a ratio against a page-granular zero reads "below resolution", never inf or 4191.00x
    for name, text in [*pages.items(), *((p.name, p.read_text()) for p in sorted(out.glob("*.csv")))]:
        assert not INF.search(text), (name, INF.search(text))
    for name, html in pages.items():  # a page's title is a short line of text, never markup
        title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
        assert "<" not in title and len(title) < 120, (name, title[:200])
    assert "below resolution" in pages[task_page("optimizer/step")]
    assert "least training-step memory (train_state_bytes, lower is better" in pages[task_page("sampler/memory")]
    for name in tasks:
        html = pages[name]
        assert 'id="leaderboard"' in html  # first: before any figure
        assert "figure-data" not in html or html.index('id="leaderboard"') < html.index("figure-data"), name
        for fig in figure_payloads(html):
            assert not _traces_look_distinct(fig), (name, _traces_look_distinct(fig))
            title = fig["layout"].get("yaxis", {}).get("title", {}).get("text", "")
            if fig["data"][0].get("type") != "heatmap":
                assert "is better" in title, (name, title)  # every metric axis names its direction
        board = html[html.index('id="leaderboard"'):].split("</thead>", 1)[0]
        for th in re.findall(r"<th>([^<]*)</th>", board):
            assert th in ("method", "impl", "status", "seeds ok", "seeds reaching the target",
                          "against the baseline (corrected p)") or "is better" in th, (name, th)
        csv = re.search(r'<a href="([^"]+\.csv)" download>', html)
        assert csv and (out / csv.group(1)).is_file()
    # linear CE: the time figure's points in N·D·V order (the declared sizes), labelled by what varies
    lce = figure_payloads(pages[task_page("loss/linear_cross_entropy")])
    xs = lce[0]["data"][0]["x"]  # the first view: time against problem size
    sizes = [int(re.search(r"N=(\d+)", x).group(1)) * int(re.search(r"V=(\d+)", x).group(1)) for x in xs]
    assert sizes == sorted(sizes) and len(sizes) == 4, xs
    assert "largest point N=4096 · V=32000" in pages[task_page("loss/linear_cross_entropy")]  # the headline too

    sync_playwright = _playwright()
    handler = functools.partial(QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    heights, errors = {}, []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": SCREEN})
            page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
            for name in tasks:
                page.goto(base + name, wait_until="load")
                page.wait_for_function(f"({VISIBLE_PLOTS}) === document.querySelectorAll('div.plot .main-svg')"
                                       ".length || document.querySelectorAll('div.plot .main-svg').length >= "
                                       f"({VISIBLE_PLOTS})", timeout=30_000)
                heights[name] = page.evaluate("document.documentElement.scrollHeight")
                # the leaderboard re-sorts on a click: by the first numeric column, ascending by raw value
                table = page.locator("#leaderboard")
                column = table.evaluate("t => Array.from(t.tBodies[0].rows[0].cells).findIndex((c, i) => i > 1 "
                                        "&& c.dataset.sort !== undefined && !isNaN(Number(c.dataset.sort)))")
                assert column > 1, name
                values = (f"t => Array.from(t.tBodies[0].rows, r => r.cells[{column}].dataset.sort)"
                          ".filter(v => v !== undefined && !isNaN(Number(v))).map(Number)")
                table.locator("th").nth(column).click()
                up = table.evaluate(values)
                assert up == sorted(up), (name, up)
                table.locator("th").nth(column).click()
                assert table.evaluate(values) == sorted(up, reverse=True), name
                if name == task_page("loss/linear_cross_entropy"):  # the page-wide filter narrows every selector
                    page.fill("#view-filter", "V=8192")
                    shown = page.evaluate("Array.from(document.querySelectorAll('select.switch'), s => [Array.from("
                                          "s.options).some(o => !o.disabled), s.selectedOptions[0].textContent + ' ' "
                                          "+ s.selectedOptions[0].title])")
                    narrowed = [text for matched, text in shown if matched]
                    assert narrowed and all("V=8192" in text for text in narrowed), shown
                    page.fill("#view-filter", "no-such-choice")
                    assert "have no matching choice" in page.inner_text("#view-filter-note")
            browser.close()
    finally:
        server.shutdown()
    assert not errors, errors
    tall = {n: h for n, h in heights.items() if h > SCREENS * SCREEN}
    assert not tall, f"task pages over {SCREENS} screens: {tall}"
