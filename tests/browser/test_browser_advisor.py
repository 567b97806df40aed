"""Real browser, issue 23: the advisor's picks appear while it runs (pick j of k, time left), and its Stop button,
clicked mid-run, keeps what it has: the page then shows the partial advice, stopped at j of k, with a usable
recommendation. Screenshots: out/screenshots/advisor_running.png and advisor_stopped.png."""
import re

import pytest

from test_browser import SHOTS, exceptions, launch, server, wait_idle  # noqa: F401  (server is a fixture)

pytestmark = pytest.mark.browser


def test_advisor_picks_appear_as_found_and_stop_keeps_them(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(server.url + "/fidelity?sample=qa_passage&window=128", wait_until="domcontentloaded")
        wait_idle(page, timeout=300)
        budget = page.get_by_label("Budget k (global tokens)")
        budget.fill("16")
        budget.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Suggest global tokens").click()
        running = page.get_by_text(re.compile(r"Pick \d+ of 16 found after"))
        running.first.wait_for(timeout=300_000)  # the first pick, shown while the search goes on
        shown = running.first.inner_text()
        assert "s left" in shown and page.get_by_role("progressbar").count() >= 1
        running.first.evaluate("e => e.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(SHOTS / "advisor_running.png"))
        page.get_by_role("button", name="Stop (keep the picks so far)").click()
        wait_idle(page, timeout=120)
        stopped = page.get_by_text(re.compile(r"Stopped at \d+ of 16 picks"))
        stopped.first.wait_for(timeout=60_000)
        j = int(re.search(r"Stopped at (\d+) of 16", stopped.first.inner_text()).group(1))
        assert 1 <= j < 16
        assert page.get_by_text("Recommended:").count() >= 1
        assert page.get_by_role("button", name="Apply the recommendation to the sidebar").count() == 1
        stopped.first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(SHOTS / "advisor_stopped.png"))
        assert not exceptions(page)
        browser.close()
