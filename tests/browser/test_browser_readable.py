"""Issue 20's smaller defects, seen as a user sees them: headless Chromium on `streamlit run app.py`.

- the Attention page keeps its open tab after a visit to another page;
- the head view spans the page, not a 335 px column;
- with dilation 2 the receptive field's bars show their gaps (pixels of the screenshot alternate);
- the table of "Run the three patterns" fits its frame (no column cut off behind a scrollbar);
- the Scaling page's time axis has several labels;
- the advisor's pick of token 512 on the embedded model comes with the copied-positions warning.
Screenshots go to out/screenshots/readable_*.png. Marked `browser` like tests/browser/test_browser.py, whose server
fixture and helpers this reuses (one server for this file).
"""
import io
import time
from urllib.parse import urlparse

import numpy as np
import pytest
from test_browser import QUIET, SHOTS, exceptions, goto, launch, server, wait_idle  # noqa: F401 (server: a fixture)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(server):  # noqa: F811
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    outside = []
    with sync_playwright() as p:
        browser = launch(p, *QUIET)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def guard(route):
            url = route.request.url
            if url.startswith(("data:", "blob:", "about:")) or urlparse(url).hostname in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        page.context.route("**/*", guard)
        page.goto(server, wait_until="domcontentloaded")
        wait_idle(page)
        yield page
        browser.close()
    assert outside == [], outside[:5]


def set_field(page, label: str, value: str) -> None:
    field = page.locator(f'[data-testid="stSidebar"] input[aria-label^="{label}"]')
    field.fill(value)
    field.press("Enter")
    wait_idle(page)


def set_document(page, text: str) -> None:
    goto(page, "Document")
    area = page.locator('[data-testid="stTextArea"] textarea').first
    area.fill(text)
    area.press("Control+Enter")
    wait_idle(page)


def chart_titled(page, title: str):
    return page.locator(".js-plotly-plot", has=page.locator(".gtitle", has_text=title)).first


def open_tab(page) -> str:
    return page.locator('[role="tab"][aria-selected="true"]').first.inner_text().strip()


def hue_runs(png: bytes, hue: tuple[int, int, int]) -> int:
    """The most separate stretches of `hue` met going down any one pixel column of the image: a solid bar is 1,
    a dotted one many."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    near = (np.abs(rgb - np.array(hue)).sum(-1) < 60)  # (h, w)
    starts = near[1:] & ~near[:-1]  # a stretch begins below a pixel of another colour
    return int(starts.sum(0).max())


def test_views_read_at_page_size(page):
    # Attention: the tab chosen stays open after visiting another page
    goto(page, "Attention")
    page.get_by_role("tab", name="Global tokens").click()
    wait_idle(page)
    assert open_tab(page) == "Global tokens"
    goto(page, "Document")
    goto(page, "Attention")
    assert open_tab(page) == "Global tokens"
    assert not exceptions(page)

    # Head view: the token columns sit at the two sides of the page
    goto(page, "Head view")
    frame_el = page.locator("iframe").first
    right = page.frame_locator("iframe").first.locator("svg g#right")
    right.wait_for(timeout=60_000)
    box, text = frame_el.bounding_box(), right.bounding_box()
    page.screenshot(path=str(SHOTS / "readable_head_view.png"))
    assert box["width"] > 900 and text["x"] + text["width"] > box["x"] + 0.8 * box["width"], (box, text)

    # Pattern: dilation 2, the reach of a token is every 2nd position: its bars are dotted, not solid
    set_field(page, "Window", "256")
    set_field(page, "Dilation", "2")
    goto(page, "Pattern")
    reach = chart_titled(page, "Receptive field")
    reach.scroll_into_view_if_needed()
    reach.locator(".scatterlayer").first.wait_for(timeout=60_000)
    shot = reach.screenshot(path=str(SHOTS / "readable_reach_dilated.png"))
    assert hue_runs(shot, (255, 127, 14)) >= 8  # "without global tokens" (orange): every 2nd position
    assert page.get_by_text("only every 2nd position", exact=False).count() == 1
    costs = page.locator('[data-testid="stDataFrame"]').first
    costs.scroll_into_view_if_needed()
    costs.screenshot(path=str(SHOTS / "readable_cost_table.png"))  # thousands separated (1,953,009): see it

    # Run the three patterns (on a short text: BigBird and LSH run on a slow generic path): every column in view
    set_document(page, "The board approved the budget for the new bridge. The mayor objected to the cost. " * 20)
    goto(page, "Pattern")
    page.get_by_role("button", name="Run the three patterns").click()
    wait_idle(page, timeout=300)
    page.get_by_text("LSH buckets over the text").first.wait_for(timeout=300_000)
    table = page.locator('[data-testid="stDataFrame"]', has=page.locator('th', has_text="Reformer LSH")).first
    table.scroll_into_view_if_needed()
    table.screenshot(path=str(SHOTS / "readable_pattern_runs_table.png"))
    widths = table.locator(".dvn-scroller").first.evaluate("s => [s.scrollWidth, s.clientWidth]")
    assert widths[0] <= widths[1] + 1, widths  # nothing hidden to the right
    headers = table.locator("th").all_inner_texts()
    assert headers == ["measure", "Longformer", "BigBird", "Reformer LSH"], headers
    assert not exceptions(page)
    set_field(page, "Dilation", "1")


def test_the_scaling_time_axis_has_several_labels(page):
    goto(page, "Scaling")
    thumbs = page.locator('.st-key-scaling_lengths input[type="range"]')
    thumbs.nth(0).focus()
    page.keyboard.press("Home")  # 16 tokens
    thumbs.nth(1).focus()
    for _ in range(3):  # 4,096 -> 512 tokens: a quick measurement
        page.keyboard.press("ArrowLeft")
    wait_idle(page)
    page.get_by_role("button", name="Measure", exact=True).click()
    wait_idle(page, timeout=300)
    chart = chart_titled(page, "Time of one forward pass")
    chart.wait_for(timeout=300_000)
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(SHOTS / "readable_scaling_time.png"))
    labels = [t for t in chart.locator(".ytick text").evaluate_all("ts => ts.map(t => t.textContent)") if t.strip()]
    assert len(labels) >= 3, labels
    assert not exceptions(page)


def test_the_advisor_says_when_it_picks_where_copied_positions_restart(page):
    """The article's first 700 tokens, window 128, k = 1 (at k = 2 the search now screens one member of the
    restart group 0, 512, ... and picks 0 and 699): the advisor picks token 512, where the embedded model's
    copied position embeddings (512 of all-MiniLM-L6-v2's, copied every 512) restart; it says so."""
    from transformers import AutoTokenizer

    from lfviz.model.loading import embedded_model_dir
    from lfviz.samples import list_samples

    text = next(s for s in list_samples() if s.id == "article").text
    offsets = AutoTokenizer.from_pretrained(embedded_model_dir())(text, return_offsets_mapping=True)["offset_mapping"]
    set_document(page, text[:offsets[699][1]])
    set_field(page, "Window", "128")
    goto(page, "Fidelity")
    k = page.locator(".st-key-fid_k input")
    k.fill("1")
    k.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Suggest global tokens").click()
    wait_idle(page, timeout=400)
    said = page.locator('[data-testid="stMarkdownContainer"]', has_text="Recommended:").first.inner_text()
    assert "512" in said.split(" at ")[1].split(":")[0], said
    warning = page.locator('[data-testid="stAlert"]', has_text="copied position embeddings restart").first
    warning.wait_for(timeout=30_000)
    assert "Position 512 is where the converted model's copied position embeddings restart" in warning.inner_text()
    assert "had 512 positions" in warning.inner_text()
    picks = page.locator('[data-testid="stDataFrame"]', has=page.locator("th", has_text="why a candidate")).first
    assert "warning" in picks.locator("th").all_inner_texts()
    warning.scroll_into_view_if_needed()
    time.sleep(0.5)
    page.screenshot(path=str(SHOTS / "readable_advisor_512.png"))
    assert not exceptions(page)
