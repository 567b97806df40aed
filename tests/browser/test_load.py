"""Load test (loopback only, bounded): 4 browser tabs on one `streamlit run app.py`, each changing its global
tokens for a bounded time at the same moment. Zero errors, every tab shows its own configuration, and the
server's memory stays bounded (the model is loaded once; run caches are capped)."""
import random
import time

import pytest

from test_browser import exceptions, launch, server, wait_idle  # noqa: F401  (server is a fixture)

pytestmark = pytest.mark.browser
TABS, SECONDS, MAX_ROUNDS = 4, 40, 6


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_four_tabs_at_once(server):
    from playwright.sync_api import sync_playwright

    url, pid = server.url, server.pid
    errors, outside = [], []
    with sync_playwright() as p:
        browser = launch(p)
        tabs = []
        for i in range(TABS):
            ctx = browser.new_context(viewport={"width": 1200, "height": 900})  # its own session
            ctx.route("**/*", lambda r: r.continue_() if "127.0.0.1" in r.request.url or r.request.url.startswith(
                ("data:", "blob:", "about:")) else (outside.append(r.request.url), r.abort()))
            page = ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/global_lab?sample=qa_passage&window={16 * (i + 1)}&global=0", wait_until="domcontentloaded")
            tabs.append(page)
        for page in tabs:
            wait_idle(page)
        start_rss = rss_mb(pid)
        rng, wanted, rounds, end = random.Random(0), {}, 0, time.time() + SECONDS
        while time.time() < end and rounds < MAX_ROUNDS:
            for i, page in enumerate(tabs):  # fire every tab's change, then wait for all: runs overlap
                wanted[i] = f"0, {rng.randrange(1, 300)}"
                box = page.locator('[data-testid="stSidebar"] input[aria-label^="Global token"]')
                box.fill(wanted[i])
                box.press("Enter")
            for page in tabs:
                wait_idle(page)
            rounds += 1
        for i, page in enumerate(tabs):
            errors.extend(exceptions(page))
            box = page.locator('[data-testid="stSidebar"] input[aria-label^="Global token"]')
            assert box.input_value() == wanted[i]  # each tab kept its own configuration
            window = page.locator('[data-testid="stSidebar"] input[aria-label^="Window"]').input_value()
            assert window == str(16 * (i + 1))
            assert page.get_by_text(f"Global tokens (2)", exact=False).count() == 1
        end_rss = rss_mb(pid)
        browser.close()
    assert rounds >= 2
    assert errors == [] and outside == []
    # one model (~90 MB of weights) and at most 6 cached runs of a 1.4k-token document: far below this bound
    assert end_rss < 4000 and end_rss - start_rss < 1500, (start_rss, end_rss)
