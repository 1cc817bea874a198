"""The site in a real headless browser (Debian's chromium, driven by Playwright): every page opens
without JavaScript errors, every plotly figure renders, every internal link resolves.

Screenshots of the overview and a task page go to ``$EFFBENCH_ARTIFACTS`` (default
``test-artifacts/``). Without chromium or Playwright the test is skipped, unless
``EFFBENCH_BROWSER_TESTS=required`` (set by ``.ci/run``, which installs both): then it fails.
"""

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from effbench.sitegen import build
from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium on a machine with no outside network: no background connections, no first-run UI.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _playwright():
    required = os.environ.get("EFFBENCH_BROWSER_TESTS") == "required"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (set EFFBENCH_BROWSER_TESTS=required to make this an error)")
    if not Path(CHROMIUM).is_file():
        if required:
            pytest.fail(f"no chromium at {CHROMIUM}")
        pytest.skip("no chromium (set EFFBENCH_BROWSER_TESTS=required to make this an error)")
    return sync_playwright


VISIBLE_PLOTS = ("Array.from(document.querySelectorAll('div.plot')).filter(d => !d.closest('[hidden]') && "
                 "!d.closest('details:not([open])')).length")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: ANN002
        pass


@pytest.fixture(scope="module")
def served_site(smoke_db, tmp_path_factory):
    db, _ = smoke_db
    out = tmp_path_factory.mktemp("browser") / "site"
    build(db, out)
    handler = functools.partial(QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", out
    server.shutdown()


def test_every_page_renders_without_errors_and_every_link_resolves(served_site):
    sync_playwright = _playwright()
    base, out = served_site
    artifacts = Path(os.environ.get("EFFBENCH_ARTIFACTS", ROOT / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    seen, queue, figures, shots = set(), [base + "index.html"], {}, []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        page.on("console", lambda msg: errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None)
        while queue:
            url = queue.pop()
            if url in seen:
                continue
            seen.add(url)
            response = page.goto(url, wait_until="load")
            assert response is not None and response.ok, f"{url}: {response and response.status}"
            plots = page.evaluate(VISIBLE_PLOTS)  # a figure behind a selector is drawn when shown
            if plots:
                page.wait_for_function(f"n => ({VISIBLE_PLOTS}) >= n && Array.from(document.querySelectorAll("
                                       "'div.plot')).filter(d => !d.closest('[hidden]') && !d.closest("
                                       "'details:not([open])')).every(d => d.querySelector('.main-svg'))", arg=plots,
                                       timeout=30_000)
            figures[url] = plots
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
                target = urldefrag(urljoin(url, href))[0]
                if urlparse(target).netloc == urlparse(base).netloc:
                    if target.endswith(".csv"):  # a download: it exists beside the page
                        assert (out / urlparse(target).path.rsplit("/", 1)[-1]).is_file(), target
                    else:
                        queue.append(target)
            name = urlparse(url).path.rsplit("/", 1)[-1]
            if name == "index.html" or (name.startswith("task-") and figures[url] and len(shots) < 2):
                shot = artifacts / ("overview.png" if name == "index.html" else "task-page.png")
                page.screenshot(path=str(shot))
                shots.append(shot)
        browser.close()
    assert not errors, errors
    pages = {urlparse(u).path.rsplit("/", 1)[-1] for u in seen}
    on_disk = {p.name for p in out.glob("*.html")}
    assert pages == on_disk, f"pages no link reaches: {on_disk - pages}"
    task_pages = [u for u in figures if "/task-" in u]
    assert task_pages and all(figures[u] > 0 for u in task_pages), "a task page without a rendered figure"
    assert {s.name for s in shots} == {"overview.png", "task-page.png"}
    assert all(s.stat().st_size > 10_000 for s in shots)


def test_tables_sort_by_a_clicked_column(served_site):
    """Click a header: rows sort by that column; click again: the other way."""
    sync_playwright = _playwright()
    base, out = served_site
    page_name = next(p.name for p in sorted(out.glob("task-*.html")) if "linear_cross_entropy" in p.name)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(base + page_name, wait_until="load")
        table = page.locator("table.sortable").filter(has=page.locator("th", has_text="impl")).first
        column = table.locator("th").all_text_contents().index("impl")

        def cells() -> list[str]:
            return table.evaluate(f"t => Array.from(t.tBodies[0].rows, r => r.cells[{column}].textContent.trim())")

        assert len(cells()) >= 3
        table.locator("th").nth(column).click()
        assert cells() == sorted(cells(), key=str.lower)
        table.locator("th").nth(column).click()
        assert cells() == sorted(cells(), key=str.lower, reverse=True)
        browser.close()
