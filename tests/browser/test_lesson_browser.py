"""The Lesson page in headless Chromium: a link opens step 1 in presenter mode (sidebar hidden), the arrow keys
walk every step and the URL follows, and the downloaded handout opens from a file with no outside request and
every step's title and figure. The server makes no outside connection either."""
import re
import time

import pytest

from test_browser import SHOTS, exceptions, launch, serve, wait_idle

from lfviz.lesson.steps import STEPS

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("lesson"))


def _header(page) -> str:
    return page.locator('[data-testid="stMain"] h2').first.inner_text()


def _wait_step(page, k: int, timeout_s: float = 120) -> None:
    end = time.time() + timeout_s
    while time.time() < end:
        if _header(page).startswith(f"Step {k} of"):
            return
        time.sleep(0.3)
    raise AssertionError(f"step {k} did not show; header: {_header(page)!r}")


def test_walk_the_lesson_by_keyboard_and_open_the_handout_offline(server, tmp_path):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    outside = []

    def guard(route):
        url = route.request.url
        if url.startswith(("data:", "blob:", "about:", "file:", server)):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        context.route("**/*", guard)
        page = context.new_page()
        page.goto(server + "/lesson?step=1&present=1", wait_until="domcontentloaded")
        wait_idle(page, timeout=400)  # the lesson precomputes every step on first open
        _wait_step(page, 1)
        assert not page.locator('[data-testid="stSidebar"]').is_visible()
        page.screenshot(path=str(SHOTS / "lesson_present_step1.png"))
        seen = []
        for k in range(2, len(STEPS) + 1):
            page.locator('[data-testid="stMain"] h2').first.click()  # focus on the page, not a widget
            page.keyboard.press("ArrowRight")
            wait_idle(page)
            _wait_step(page, k)
            seen.append(k)
            assert re.search(rf"[?&]step={k}\b", page.url), page.url
            assert not exceptions(page)
            page.screenshot(path=str(SHOTS / f"lesson_present_step{k}.png"))
        page.keyboard.press("ArrowLeft")
        wait_idle(page)
        _wait_step(page, len(STEPS) - 1)
        page.screenshot(path=str(SHOTS / "lesson_present_step7.png"))
        # out of presenter mode: the sidebar is back and the handout can be downloaded
        page.locator(".st-key-lesson_present label").click()
        wait_idle(page)
        assert "present=1" not in page.url and page.locator('[data-testid="stSidebar"]').is_visible()
        with page.expect_download() as download:
            page.locator(".st-key-lesson_handout button").click()
        path = tmp_path / "lesson.html"
        download.value.save_as(path)
        handout = context.new_page()
        handout.goto(path.as_uri(), wait_until="load")
        handout.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
        text = handout.locator("body").inner_text()
        assert all(f"Step {s.number}. {s.title}" in text for s in STEPS)
        figures = handout.locator(".js-plotly-plot").count()
        assert figures >= 6, figures  # steps 1-6 on the embedded model; 7 and 8 name the model to load
        handout.screenshot(path=str(SHOTS / "lesson_handout.png"), full_page=False)
        browser.close()
    assert seen == list(range(2, len(STEPS) + 1))
    assert outside == [], outside
    assert server.net_log.read_text() == ""
