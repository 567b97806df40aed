"""Real browser, issue 20 item 5: the QA sample (a document read with a question) in the views that lay values over
the text. The question is shown apart, on its own line after "Question:", and the document under it reads as
written: no question word painted over its first characters, no "[SEP]" inside "Carrow Point Lighthouse".
Screenshots: out/screenshots/received_question.png and global_lab_question.png."""
import pytest

from test_browser import SHOTS, exceptions, launch, server, wait_idle  # noqa: F401  (server is a fixture)

pytestmark = pytest.mark.browser
QUESTION_LINE = "Question: Who designed Carrow Point Lighthouse?"
DOCUMENT_START = "Carrow Point Lighthouse\n\nCarrow Point Lighthouse is a disused lighthouse"


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n")]


def test_the_qa_sample_shows_its_question_apart(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url + "/attention?sample=qa_passage", wait_until="domcontentloaded")
        wait_idle(page)
        page.get_by_role("tab", name="Received, over the text").click()
        wait_idle(page)
        view = page.locator('[data-testid="stHtml"]', has_text="Question:").first
        view.wait_for(timeout=60_000)
        shown = view.inner_text()
        first, rest = shown.split("\n", 1)
        assert QUESTION_LINE in first and "[SEP]" in first  # the question and its separator, on their own line
        assert rest.startswith(DOCUMENT_START), rest[:120]
        assert "[SEP]" not in rest[:3000] and "Who designed" not in rest
        view.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.mouse.move(700, 500)
        page.mouse.wheel(0, -250)  # the question line below Streamlit's header, at the top of the shot
        page.wait_for_timeout(500)
        page.screenshot(path=str(SHOTS / "received_question.png"))
        assert not exceptions(page)

        page.locator('[data-testid="stSidebarNav"] a', has_text="Global-token lab").first.click()
        wait_idle(page)
        page.get_by_text("Pick tokens in the text", exact=False).click()
        wait_idle(page)
        box = page.locator(".lfviz-text").first
        box.wait_for(timeout=60_000)
        picked = box.inner_text()
        assert QUESTION_LINE in picked.split("\n", 1)[0]
        assert picked.split("\n", 1)[1].startswith(DOCUMENT_START)
        box.evaluate("e => e.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(SHOTS / "global_lab_question.png"))
        assert not exceptions(page)
        browser.close()
