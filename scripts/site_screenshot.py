"""Screenshot one page of a built site with headless Chromium (the README's picture).

Usage: python scripts/site_screenshot.py SITE_DIR PAGE.html OUT.png [WIDTH HEIGHT]
"""

import functools
import http.server
import sys
import threading

from playwright.sync_api import sync_playwright

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main(site: str, page_name: str, out: str, width: int = 1400, height: int = 1800) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/{page_name}", wait_until="load")
        # every plot that is shown has been drawn (hidden choices and closed details are drawn when opened)
        page.wait_for_function("Array.from(document.querySelectorAll('div.plot')).filter(d => !d.closest('[hidden]') "
                               "&& !d.closest('details:not([open])')).every(d => d.querySelector('.main-svg'))")
        page.screenshot(path=out)
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(v) for v in sys.argv[4:6]))
