"""lfviz.headview: bertviz HTML that loads nothing from outside, keeps hostile tokens inside their strings, stays
small, and draws the captured weights of a span unchanged. The last test renders it in headless Chromium."""
import hashlib
import json
import os
import re

import numpy as np
import pytest
import torch

from lfviz.figures import headview
from lfviz.model.capture import Capture
from lfviz.attention.layout import weights_from_dense

HOSTILE = ["[CLS]", "</script><script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "a&amp;b",
           "line\u2028sep", "<!--", "</SCRIPT >", "Ġword", "[SEP]"]


def probs(L, H, N, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(torch.randn(H, N, N, generator=g) * 2, -1) for _ in range(L)]


def params_of(html: str) -> dict:
    """The parameters the page's script sees (JSON is valid JS; \\u escapes decode to the same values)."""
    at = html.index(headview._PARAMS_PREFIX) + len(headview._PARAMS_PREFIX)
    return json.JSONDecoder().raw_decode(html, at)[0]


def without_vendored(html: str) -> str:
    for name in headview.VENDORED:
        code = (headview.VENDOR_DIR / name).read_text(encoding="utf-8")
        assert html.count(code) == 1, f"{name} is not inlined exactly once"
        html = html.replace(code, "")
    return html


@pytest.fixture(scope="module", params=headview.MODES)
def page(request):
    mode = request.param
    return mode, headview.head_view_html(probs(2, 3, len(HOSTILE)), HOSTILE, mode)


# -- offline ----------------------------------------------------------------------------------------------------
def test_nothing_is_loaded_from_an_outside_address(page):
    mode, html = page
    assert not re.search(r"<script[^>]*\ssrc\s*=", html, re.I), "a <script src> is left"
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "cdnjs" not in html and "sourceMappingURL" not in html
    assert not re.search(r"@import|url\(\s*['\"]?(?:https?:)?//", html, re.I)
    rest = without_vendored(html)
    assert "require.config" not in rest and "paths" not in rest  # bertviz's CDN paths are gone
    # every remaining address sits in verbatim third-party code (licence comments, SVG/XML namespace names)
    assert not re.search(r"https?:|//cdn|//[a-z0-9.-]+\.(?:com|org|net|io)/", rest, re.I), rest[:300]


def test_vendored_code_is_inline_in_load_order(page):
    mode, html = page
    at = [html.index((headview.VENDOR_DIR / n).read_text(encoding="utf-8")) for n in headview.VENDORED]
    assert at == sorted(at)  # jQuery, d3 (as globals), then require.js
    shim, view = html.index(headview.AMD_SHIM), html.index("requirejs(['jquery', 'd3']")
    assert at[-1] < shim < view  # modules registered before bertviz asks for them
    assert 'define("jquery"' in headview.AMD_SHIM and 'define("d3"' in headview.AMD_SHIM


def test_vendored_files_match_the_readme():
    readme = (headview.VENDOR_DIR / "README.md").read_text()
    for name in headview.VENDORED:
        digest = hashlib.sha256((headview.VENDOR_DIR / name).read_bytes()).hexdigest()
        assert f"`{name}`" in readme and digest in readme, f"{name} differs from the README's sha256"
    for lic in ("LICENSE-requirejs.txt", "LICENSE-d3.txt", "LICENSE-jquery.txt"):
        assert (headview.VENDOR_DIR / lic).read_text().strip(), lic


# -- escaping ----------------------------------------------------------------------------------------------------
def test_hostile_tokens_stay_inside_their_strings(page):
    mode, html = page
    scripts = len(headview.VENDORED) + 2  # the libraries, the AMD shim, bertviz's view
    assert len(re.findall(r"</script", html, re.I)) == scripts
    assert len(re.findall(r"<script\b", without_vendored(html), re.I)) == scripts  # jQuery's code names "<script"
    rest = without_vendored(html)
    assert "<!--" not in html and "\u2028" not in html and "<img" not in rest and "&amp;" not in rest
    assert "\\u003c/script\\u003e" in html and "a\\u0026amp;b" in html
    shown = params_of(html)["attention"][0]
    assert shown["left_text"] == shown["right_text"] == [t.replace("Ġ", " ") for t in HOSTILE]


def test_safe_json_changes_no_value():
    value = {"t": ["</script>", "<!--", "&", "\u2028", "é", 'q"'], "x": [0.5, 0]}
    text = headview.safe_json(value)
    assert json.loads(text) == value and not re.search("[<>&\u2028\u2029]", text)


# -- content, sizes ----------------------------------------------------------------------------------------------
def test_weights_are_rounded_and_kept(page):
    mode, html = page
    att = probs(2, 3, len(HOSTILE))
    got = np.array(params_of(html)["attention"][0]["attn"])  # (L, H, N, N)
    want = np.stack([a.numpy() for a in att])
    assert got.shape == want.shape == (2, 3, len(HOSTILE), len(HOSTILE))
    assert np.abs(got - want).max() <= 5e-4 + 1e-9
    assert all(round(v, 3) == v for v in got.ravel())


def test_size_is_bounded_and_zeros_are_short():
    L, H, N = 6, 12, 64
    att = probs(L, H, N)
    for a in att:
        a[:, :, N // 2:] = 0  # half the cells outside the band
    html = headview.head_view_html(att, [f"t{i}" for i in range(N)])
    data = len(without_vendored(html))
    assert data < L * H * N * N * 4.5, data  # "0," for zeros, "0.012," at most for the rest
    assert ",0.0," not in html and "0.0]" not in html
    assert len(html) < 2_500_000


def test_layer_labels_and_initial_layer():
    att = probs(3, 2, 4)
    html = headview.head_view_html(att, list("abcd"), "head", layer_labels=[3, 4, 5], layer=4)
    p = params_of(html)
    assert p["include_layers"] == [3, 4, 5] and p["layer"] == 4
    model = params_of(headview.head_view_html(att, list("abcd"), "model", layer_labels=[3, 4, 5]))
    assert model["include_layers"] == [3, 4, 5] and model["total_heads"] == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="neuron"), "mode must be one of"),
    (dict(layer=7), "initial layer 7"),
    (dict(layer_labels=[0]), "1 layer labels for 2 layers"),
    (dict(tokens=list("abc")), "N = 3 tokens"),
])
def test_bad_input_says_what_to_fix(kwargs, message):
    args = dict(attention=probs(2, 2, 4), tokens=list("abcd"))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        headview.head_view_html(**args)


def test_span_attention_is_the_dense_weights_cut_to_the_span():
    torch.manual_seed(0)
    n, window, globals_ = 40, 8, (3,)
    dense = torch.softmax(torch.randn(2, n, n), -1)
    w = weights_from_dense(dense, window, (1, 2), globals_)
    cap = Capture({0: w.to(dtype=torch.float16), 1: w.to(dtype=torch.float16)})
    ref = w.dense()  # (H, n, n): only the band and the global rows/columns survive
    att = headview.span_attention(cap, 10, 16)
    assert len(att) == 2 and att[0].dtype == torch.float32 and att[0].shape == (2, 16, 16)
    assert torch.allclose(att[0], ref[:, 10:26, 10:26], atol=1e-3)
    mass = headview.row_mass(att)
    assert mass.shape == (2,) and (mass < 1).all() and (mass > 0).all()
    whole = headview.span_attention(cap, 0, n, layers=[1])
    assert len(whole) == 1 and torch.allclose(whole[0].sum(-1), ref.sum(-1), atol=2e-2)


def test_span_helpers():
    tokens = ["[CLS]", "a", "verylongtokenindeed!", "b"]
    assert headview.span_tokens(tokens, 0, 3, global_tokens=(0,)) == ["★[CLS]", "a", "verylongtoken…"]
    assert headview.span_tokens(tokens, 1, 3, global_tokens=(3,)) == ["a", "verylongtoken…", "★b"]
    assert headview.default_start(1000, 64) == 0
    assert headview.default_start(1000, 64, (500, 40)) == 40 - 16
    assert headview.default_start(100, 64, (90,)) == 36  # clamped so the span fits
    assert headview.view_height(8, "head") < headview.view_height(16, "head") < headview.view_height(128, "head")
    assert headview.view_height(64, "head") == 30 + 64 * 22.5 + 30 + 40  # every token in view: no inner scrolling
    assert headview.view_height(64, "model", 6, 12) == int(6 * (64 * 7 + 10) + 38 + 40)  # all six layers
    assert headview.view_height(64, "model", 6, 3) > headview.view_height(64, "model", 6, 12)  # fewer, larger heads


# -- a real browser ----------------------------------------------------------------------------------------------
@pytest.mark.browser
def test_renders_offline_in_chromium():
    chromium = "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(chromium):
        if os.environ.get("CI"):
            pytest.fail("browser test must run in CI: needs playwright and /usr/bin/chromium")
        pytest.skip("needs playwright and /usr/bin/chromium")
    att = probs(2, 3, len(HOSTILE))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            for mode in headview.MODES:
                html = headview.head_view_html(att, HOSTILE, mode, layer_labels=[4, 5], layer=5)
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                requests, dialogs, errors = [], [], []
                page.route("**/*", lambda route: (requests.append(route.request.url), route.abort()))
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.set_content(html)
                page.wait_for_selector("svg text", timeout=20_000)
                texts = page.eval_on_selector_all("svg text", "els => els.map(e => e.textContent)")
                assert (requests, dialogs, errors) == ([], [], []), (mode, requests, dialogs, errors)
                if mode == "head":
                    assert HOSTILE[1] in texts and HOSTILE[2] in texts
                    assert page.eval_on_selector("select#layer", "e => e.value") == "5"
                    # the view spans the page (bertviz alone draws a 335 px column): the key tokens sit at the right
                    right = page.eval_on_selector("svg g#right", "g => g.getBoundingClientRect().right")
                    lines = page.eval_on_selector_all("g#attention line", "ls => ls.map(l => l.getBBox().width)")
                    assert right > 0.8 * 1300 and min(lines) > 600, (right, min(lines))
                else:
                    assert texts[:2] == ["Heads", "0"] and "Layers" in texts and "5" in texts
                page.close()
        finally:
            browser.close()
