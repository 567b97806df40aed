"""Real-browser test: headless Debian Chromium drives `streamlit run app.py` through every page.

Asserts no exception element and no request to any outside address on any page; that Plotly charts and the
bertviz view render (SVG present); that clicking a token in the Global-token lab makes it global and changes
the predictions; that a document full of HTML/script shows as text (no dialog fires). Screenshots go to
out/screenshots/. In CI (CI=true) this test must run: a missing browser is a failure, not a skip.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "out" / "screenshots"


QUIET = ("--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync")  # no calls home


def launch(p, *extra: str):
    """Headless Chromium (Debian's) from Playwright `p`, sandbox and GPU off, no background networking; `extra`
    switches added."""
    return p.chromium.launch(executable_path=CHROMIUM,
                             args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", *extra])
PAGES = [("Document", "document"), ("Pattern", "pattern"), ("Attention", "attention"),
         ("Global-token lab", "global_lab"), ("Fidelity", "fidelity"), ("Study", "study"),
         ("Head view", "head_view"), ("Scaling", "scaling"), ("Lesson", "lesson")]
HOSTILE = ('<script>alert(1)</script> "><img src=x onerror=alert(2)> </script> The board approved the budget. '
           "The contract ends on termination for breach. ")

pytestmark = pytest.mark.browser


def _need_browser():
    missing = [x for x in (CHROMIUM,) if not os.path.exists(x)]
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test must run in CI but {missing} is missing: .ci/run installs chromium")
        pytest.skip(f"needs {missing}: apt-get install chromium")


class Server(str):
    """The server's URL (a str), with the process id as .pid."""

    url = property(str.__str__)


# Loaded into the server process (sitecustomize on PYTHONPATH): logs every connection to a non-loopback address.
NET_GUARD = """
import os, socket
_log = os.environ["LFVIZ_NET_LOG"]
_loopback = ("127.", "localhost", "::1", "0.0.0.0")
for _name in ("connect", "connect_ex"):
    _real = getattr(socket.socket, _name)
    def _guarded(self, address, _real=_real):
        if isinstance(address, tuple) and not str(address[0]).startswith(_loopback):
            with open(_log, "a") as f:
                f.write(f"{address[0]}:{address[1]}\\n")
        return _real(self, address)
    setattr(socket.socket, _name, _guarded)
"""


def serve(guard: Path, address: str = "127.0.0.1", args: tuple = (), **env_extra):
    """`streamlit run app.py` bound to `address` (always reached through 127.0.0.1), every outside connection of
    the server process logged; yields the handle, stops the server after."""
    _need_browser()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (guard / "sitecustomize.py").write_text(NET_GUARD)
    log = guard / "outside.log"
    log.write_text("")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LFVIZ_NET_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")]), **env_extra}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.address", address, "--server.port", str(port), "--server.fileWatcherType", "none",
                             "--browser.gatherUsageStats", "false", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("streamlit did not start")
        handle = Server(url)
        handle.pid, handle.net_log = proc.pid, log
        yield handle
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("netguard"))


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    outside, dialogs = [], []
    with sync_playwright() as p:
        browser = launch(p, *QUIET)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def guard(route):
            host = urlparse(route.request.url).hostname
            if route.request.url.startswith(("data:", "blob:", "about:")) or host in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.context.route("**/*", guard)
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        # The very first request on this fresh server is a shared link to a page (Streamlit's legacy pages/
        # routing would run that page without app.py): it must open that page with the link's configuration.
        page.goto(server + "/attention?window=64&global=0%2C3&layer=2", wait_until="domcontentloaded")
        wait_idle(page)
        first = {"exceptions": exceptions(page), "title": page.locator("h1").first.inner_text(),
                 "window": page.locator('[data-testid="stSidebar"] input[aria-label^="Window"]').input_value(),
                 "nav": page.locator('[data-testid="stSidebarNav"] a').count()}
        page.goto(server, wait_until="domcontentloaded")
        wait_idle(page)
        yield page, outside, dialogs, first
        browser.close()


def wait_idle(page, timeout=180):
    """Until the app has rendered and no script run is in progress for a moment."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    end, quiet = time.time() + timeout, 0
    while time.time() < end:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        quiet = 0 if running else quiet + 1
        if quiet >= 4:
            return
        time.sleep(0.5)
    raise AssertionError("the app kept running")


def goto(page, title):
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    wait_idle(page)


def exceptions(page):
    return page.locator('[data-testid="stException"]').all_inner_texts()


def document_text(page):
    """Open the Document page: (its text area, the document it holds now)."""
    goto(page, "Document")
    area = page.locator('[data-testid="stTextArea"] textarea').first
    return area, area.input_value()


def upload_text_file(page, path):
    page.locator('.st-key-upload [data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    wait_idle(page)


def chart_data(page):
    return page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                         ".map(d => (d.data || []).map(t => t.y ? Array.from(t.y) : null))")


def test_shared_link_opens_its_page_as_first_request(browser_page):
    first = browser_page[3]
    assert first["exceptions"] == []
    assert "attention" in first["title"].lower()
    assert first["window"] == "64" and first["nav"] == len(PAGES)


def test_every_page_renders_offline(browser_page):
    page, outside, dialogs, _ = browser_page
    for title, slug in PAGES:
        goto(page, title)
        page.screenshot(path=str(SHOTS / f"{slug}.png"), full_page=True)
        assert not exceptions(page), (title, exceptions(page))
        if slug in ("pattern", "attention", "global_lab", "fidelity"):
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        if slug == "head_view":
            frame = page.frame_locator("iframe").first
            frame.locator("svg").first.wait_for(timeout=60_000)
    assert outside == [], f"requests to outside addresses: {outside[:5]}"
    assert dialogs == []


def test_click_a_token_to_make_it_global(browser_page):
    page, outside, dialogs, _ = browser_page
    area, _ = document_text(page)
    area.fill(HOSTILE * 4)
    area.press("Control+Enter")
    wait_idle(page)
    assert page.get_by_text("<script>alert(1)</script>", exact=False).count() > 0 or \
        "<script>alert(1)</script>" in area.input_value()
    window = page.locator('[data-testid="stSidebar"] input[aria-label^="Window"]')
    window.fill("8")  # a window narrower than the text, so a global token matters
    window.press("Enter")
    wait_idle(page)
    goto(page, "Global-token lab")
    page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=60_000)
    assert page.get_by_text("Global tokens (1)", exact=False).count() == 1
    before = chart_data(page)
    page.locator(".js-plotly-plot .scatterlayer .point").nth(12).click(force=True)
    wait_idle(page)
    page.wait_for_selector("text=Global tokens (2)", timeout=60_000)
    after = chart_data(page)
    assert after != before  # the predictions (and the strip) changed
    page.screenshot(path=str(SHOTS / "global_lab_clicked.png"), full_page=True)
    # a plain drag (no toolbar first) draws a box and toggles every token inside it
    area_box = page.locator(".st-key-lab_strip .nsewdrag").first.bounding_box()
    x0, x1 = area_box["x"] + 0.25 * area_box["width"], area_box["x"] + 0.45 * area_box["width"]
    page.mouse.move(x0, area_box["y"] + 3)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, area_box["y"] + area_box["height"] / 2, steps=8)
    page.mouse.move(x1, area_box["y"] + area_box["height"] - 3, steps=8)
    page.mouse.up()
    wait_idle(page)
    listed = page.get_by_text("Global tokens (", exact=False).first.inner_text()
    count = int(listed.split("(")[1].split(")")[0])
    assert count > 5, listed  # far more than the two from before: the box selected a run of tokens
    assert not exceptions(page)
    assert dialogs == [], f"a dialog fired: {dialogs}"
    assert outside == []


def _global_field_changes(page, old: str, timeout_s: float = 60) -> set[int]:
    field = page.locator('[data-testid="stSidebar"] input[aria-label^="Global"]')
    for _ in range(int(timeout_s * 4)):
        if field.input_value() != old:
            break
        time.sleep(0.25)
    wait_idle(page)
    return {int(x) for x in field.input_value().replace(" ", "").split(",") if x}


def test_pick_tokens_in_the_text(browser_page):
    """The lab's text view: the document reads as text, a click on a word makes it global (highlighted), a
    second click makes it local again; the search underlines matches. The hostile text stays text."""
    page, outside, dialogs, _ = browser_page
    area, _ = document_text(page)
    area.fill("The tenant pays rent monthly. " + HOSTILE + " Termination needs notice.")
    area.press("Control+Enter")
    wait_idle(page)
    goto(page, "Global-token lab")
    page.get_by_text("Pick tokens in the text", exact=False).click()
    wait_idle(page)
    box = page.locator(".lfviz-text")
    box.wait_for(timeout=60_000)
    assert "The tenant pays rent monthly." in box.inner_text() and "<script>alert(1)</script>" in box.inner_text()
    field = page.locator('[data-testid="stSidebar"] input[aria-label^="Global"]')
    old = field.input_value()
    before = {int(x) for x in old.replace(" ", "").split(",") if x}
    assert 2 not in before  # [CLS] the tenant: "tenant" is position 2
    box.locator("span.tok", has_text="tenant").first.click()
    assert _global_field_changes(page, old) == before | {2}
    assert page.locator(".lfviz-text span.glob", has_text="tenant").count() == 1
    page.locator('.st-key-lab_text_find input').fill("notice")
    page.locator('.st-key-lab_text_find input').press("Enter")
    wait_idle(page)
    assert page.locator(".lfviz-text span.match", has_text="notice").count() == 1
    page.screenshot(path=str(SHOTS / "global_lab_text_view.png"), full_page=True)
    old = field.input_value()
    page.locator(".lfviz-text span.glob", has_text="tenant").first.click()
    assert _global_field_changes(page, old) == before  # a second click makes it local again
    assert not exceptions(page) and dialogs == [] and outside == []


def _map_colours(page) -> list[str]:
    return page.locator(".st-key-fid_map span.tok").evaluate_all("spans => spans.map(s => s.style.backgroundColor)")


def _alpha(colour: str) -> float:
    return float(colour.rstrip(")").split(",")[3]) if colour.startswith("rgba") else (1.0 if colour else 0.0)


def test_suggest_apply_and_the_blind_spot_map_changes(browser_page):
    """Fidelity page: the blind-spot map over the text, 'Suggest global tokens', 'Apply': the sidebar takes the
    recommendation, its tokens are boxed in the map and the map turns lighter (closer to full attention)."""
    page, outside, dialogs, _ = browser_page
    area, _ = document_text(page)
    area.fill("The board approved the budget for the new bridge. The mayor objected to the cost. " * 6 + HOSTILE)
    area.press("Control+Enter")
    wait_idle(page)
    for label, value in (("Window", "16"), ("Global", "0")):  # a window narrower than the text
        field = page.locator(f'[data-testid="stSidebar"] input[aria-label^="{label}"]')
        field.fill(value)
        field.press("Enter")
        wait_idle(page)
    goto(page, "Fidelity")
    page.locator(".st-key-fid_map span.tok").first.wait_for(timeout=60_000)
    before = _map_colours(page)
    assert "<script>alert(1)</script>" in page.locator(".st-key-fid_map .lfviz-text").inner_text()
    k = page.locator(".st-key-fid_k input")
    k.fill("3")
    k.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Suggest global tokens").click()
    wait_idle(page)
    said = page.locator('[data-testid="stMarkdownContainer"]', has_text="Recommended:").first.inner_text()
    positions = {int(x) for x in said.split(" at ")[1].split(":")[0].replace(" ", "").split(",")}
    assert 1 <= len(positions) <= 3
    page.get_by_role("button", name="Apply the recommendation to the sidebar").click()
    assert _global_field_changes(page, "0") == positions
    boxed = page.locator(".st-key-fid_map span.globv")
    for _ in range(240):  # the map redraws with the applied tokens boxed
        if boxed.count() == len(positions):
            break
        time.sleep(0.25)
    assert {int(x) for x in boxed.evaluate_all("spans => spans.map(s => s.dataset.p)")} == positions
    after = _map_colours(page)
    assert len(after) == len(before) and after != before
    assert sum(map(_alpha, after)) < sum(map(_alpha, before))  # lighter: closer to full attention
    page.screenshot(path=str(SHOTS / "fidelity_applied.png"), full_page=True)
    assert not exceptions(page) and dialogs == [] and outside == []


def test_run_longformer_bigbird_and_lsh_on_the_model(browser_page):
    """Pattern page: the three patterns run on the model; the table, one captured picture each, and the text
    coloured by LSH bucket (several colours: hashing groups tokens)."""
    page, outside, dialogs, _ = browser_page
    goto(page, "Pattern")
    page.get_by_role("button", name="Run the three patterns").click()
    wait_idle(page)
    page.get_by_text("LSH buckets over the text").first.wait_for(timeout=120_000)
    assert page.get_by_text("Reformer LSH: layer", exact=False).count() >= 1
    colours = page.locator(".st-key-pr_buckets span.tok").evaluate_all("s => s.map(e => e.style.backgroundColor)")
    assert len(colours) > 20 and len(set(colours)) > 3
    page.screenshot(path=str(SHOTS / "pattern_runs.png"), full_page=True)
    assert not exceptions(page) and dialogs == [] and outside == []


def test_hostile_document_on_every_page(browser_page):
    """After test_click_... the document holds <script>, </script> and onerror payloads: every view shows them
    as text, no dialog fires, nothing breaks."""
    page, outside, dialogs, _ = browser_page
    for title, slug in PAGES:
        goto(page, title)
        if slug == "head_view":
            page.frame_locator("iframe").first.locator("svg").first.wait_for(timeout=60_000)
        if slug == "attention":
            page.get_by_role("tab", name="Received, over the text").click()
            wait_idle(page)
            assert page.get_by_text("<script>alert(1)</script>", exact=False).count() > 0
        assert not exceptions(page), (title, exceptions(page))
    page.screenshot(path=str(SHOTS / "hostile_last_page.png"), full_page=True)
    assert dialogs == [], f"a dialog fired: {dialogs}"
    assert outside == []


def test_a_binary_upload_is_refused_and_the_document_kept(browser_page, tmp_path):
    page, outside, dialogs, _ = browser_page
    area, before = document_text(page)
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"\xff\xfe\x00\x81binary\x00\x9c" * 50)
    upload_text_file(page, bad)
    assert page.get_by_text("is not UTF-8 text", exact=False).count() == 1
    assert area.input_value() == before
    assert not exceptions(page)


def test_oversized_uploads_are_refused_and_the_document_kept(browser_page, tmp_path):
    """The upload cap (.streamlit/config.toml) is enforced by Streamlit's uploader before the file reaches the
    app, with its own message; the page's own size check is a second line for clients that skip it."""
    page, outside, dialogs, _ = browser_page
    area, before = document_text(page)
    for words in (410_000, 800_000):  # 2.05 MB and 4 MB of valid UTF-8 text
        big = tmp_path / f"long{words}.txt"
        big.write_text("word " * words)
        upload_text_file(page, big)
        assert page.get_by_text("must be 2.0MB or smaller", exact=False).count() >= 1
        assert area.input_value() == before
    assert not exceptions(page)


def test_open_an_export_with_another_configuration(browser_page, tmp_path):
    """An export made elsewhere with another configuration: the app says how it differs and can adopt it; a
    damaged export gets a message and changes nothing."""
    import lfviz

    page, outside, dialogs, _ = browser_page
    runner = lfviz.load_runner("embedded", device="cpu")
    text = "An exported document about sliding windows and global tokens."
    cfg = lfviz.AttentionConfig(window=32, dilation=2, global_tokens=(0, 3))
    good = runner.run(text, config=cfg, capture_layers=[1]).save(tmp_path / "run.safetensors")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(good.read_bytes()[:5000])
    area, before = document_text(page)
    page.get_by_text("Open an export", exact=False).click()
    uploader = page.locator('.st-key-doc_import [data-testid="stFileUploaderDropzoneInput"]')
    uploader.set_input_files(str(damaged))
    wait_idle(page)
    assert page.get_by_text("export the run again", exact=False).count() == 1
    assert area.input_value() == before
    uploader.set_input_files(str(good))
    wait_idle(page)
    assert page.get_by_text("This export differs from the current view", exact=False).count() == 1
    page.get_by_role("button", name="Show this saved run").click()
    wait_idle(page)
    window = page.locator('[data-testid="stSidebar"] input[aria-label^="Window"]')
    assert window.input_value() == "32"
    assert area.input_value() == text
    goto(page, "Attention")  # the saved attention, as saved: no model run, its layer picked
    assert page.get_by_text("Showing the saved run from the export", exact=False).count() == 1
    assert page.get_by_text("Layer 1, head", exact=False).count() >= 1
    assert not exceptions(page)


def test_wrong_file_type_and_a_one_megabyte_paste(browser_page, tmp_path):
    page, outside, dialogs, _ = browser_page
    area, before = document_text(page)
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4 not text")
    upload_text_file(page, pdf)
    assert page.get_by_text("not allowed", exact=False).count() >= 1  # the uploader names the accepted types
    assert area.input_value() == before
    area.fill("word " * 200_000)  # 1 MB
    area.press("Control+Enter")
    wait_idle(page)
    assert page.get_by_text("only the first 4,096 tokens", exact=False).count() >= 1  # truncation is visible
    assert not exceptions(page)


def test_zz_the_server_made_no_outside_connection(server, browser_page):
    """Runs after the others in this file: nothing the server did (model loading, runs, every page) opened a
    connection to a non-loopback address."""
    assert server.net_log.read_text() == ""
