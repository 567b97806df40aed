"""The app as shared on a network (`make run ADDRESS=0.0.0.0`), seen by a visitor in headless Chromium (reached
through 127.0.0.1 only): no server path field, a crafted results upload cannot read a server folder, a folder typed
as a model is refused without saying whether it exists, and the server makes no outside connection."""
import io
import json

import pyarrow.parquet as pq
import pytest

from test_browser import SHOTS, exceptions, goto, launch, serve, wait_idle

from lfviz.config import AttentionConfig
from lfviz.study.job import META_KEY, run_study

pytestmark = pytest.mark.browser
SECRET = "The launch code is 0000-SECRET-0000."


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    # as `make run ADDRESS=0.0.0.0` starts it (the URL it prints is given, so nothing is looked up)
    yield from serve(tmp_path_factory.mktemp("shared"), address="0.0.0.0",
                     args=("--browser.serverAddress", "localhost"), LFVIZ_PATHS="", LFVIZ_CORPUS="")


def _crafted_results(tmp_path):
    """Real results of a one-document study whose metadata names a folder holding a secret under the same id."""
    public, secret = tmp_path / "public", tmp_path / "secret"
    public.mkdir()
    secret.mkdir()
    (public / "doc.txt").write_text("The board approved the budget. " * 8)
    (secret / "doc.txt").write_text(SECRET)
    out = tmp_path / "r.parquet"
    run_study(public, out, config=AttentionConfig(window=16), strategies="none")
    table = pq.read_table(out)
    meta = json.loads(table.schema.metadata[META_KEY])
    meta["corpus"] = str(secret)
    crafted = tmp_path / "results.parquet"
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), crafted)
    return crafted


def test_a_visitor_reads_no_server_file(shared_server, tmp_path):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    crafted = _crafted_results(tmp_path)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(shared_server + "/?window=16", wait_until="domcontentloaded")
        wait_idle(page)
        # The model field: a server folder is refused with the same words whether or not it exists.
        page.locator(".st-key-model_choice").click()
        page.get_by_role("option", name="Hub id (from the server's cache)...").click()
        wait_idle(page)
        said = []
        for probe in ("/etc", "/no/such/folder"):
            field = page.locator(".st-key-model_path input")
            field.fill(probe)
            field.press("Enter")
            wait_idle(page)
            page.locator(".st-key-model_load button").click()
            wait_idle(page)
            said.append(page.locator('[data-testid="stAlertContentError"]').all_inner_texts())
        page.screenshot(path=str(SHOTS / "shared_model_field.png"), full_page=True)
        assert said[0] == said[1] and any("turned off on this shared app" in t for t in said[0]), said
        # The Study page: no path field; the crafted upload opens its rows but never the secret folder.
        goto(page, "Study")
        assert page.locator(".st-key-study_path").count() == 0
        assert "off on this shared app" in page.locator('[data-testid="stMain"]').inner_text()
        page.locator('.st-key-study_upload [data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(crafted))
        wait_idle(page)
        page.locator(".st-key-study_open button").click()
        wait_idle(page)
        page.screenshot(path=str(SHOTS / "shared_study_crafted_upload.png"), full_page=True)
        shown = page.locator('[data-testid="stApp"]').inner_text()
        assert "cannot be opened here" in shown and "SECRET" not in shown and not exceptions(page)
        goto(page, "Document")
        assert "SECRET" not in page.locator('[data-testid="stTextArea"] textarea').first.input_value()
        browser.close()
    assert shared_server.net_log.read_text() == ""  # the server itself reached nothing outside
