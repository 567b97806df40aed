"""AppTest of the Head view page, driven through its keyed widgets.

st.iframe (like components.v1.html) reaches AppTest as an UnknownElement of type "iframe"; its proto (IFrame)
holds the page in `srcdoc`, whose inlined parameters the tests read back."""
import json
import re

from apptools import open_page

from lfviz.figures import headview

DOC = "The contract ends on termination. The budget was approved by the board. " * 12  # ~170 tokens


def head_view_page(**state):
    return open_page("head_view", DOC, **state)


def shown(at) -> tuple[dict, str]:
    """(bertviz parameters, page HTML) of the one embedded view."""
    frames = at.get("iframe")
    assert len(frames) == 1, f"expected one embedded view, found {len(frames)}"
    html = frames[0].proto.srcdoc
    start = html.index(headview._PARAMS_PREFIX) + len(headview._PARAMS_PREFIX)
    return json.JSONDecoder().raw_decode(html, start)[0], html


def tokens_of(params) -> list[str]:
    return params["attention"][0]["left_text"]


def test_span_widgets_change_the_view():
    at = head_view_page()
    params, html = shown(at)
    assert at.number_input(key="headview_length").value == 64 and at.slider(key="headview_start").value == 0
    first = tokens_of(params)
    assert len(first) == 64 and first[0] == "★[CLS]"  # token 0 is the sidebar's default global token
    assert params["include_layers"] == list(range(6)) and len(params["attention"][0]["attn"][0]) == 12
    assert params["heads"] == [0]  # the sidebar's head is drawn; the other eleven keep their colours, a click away
    assert not re.search(r"<script[^>]*\ssrc\s*=", html) and "cdnjs" not in html
    assert any("rows are not renormalised" in c.value for c in at.caption)

    at.slider(key="headview_start").set_value(20).run()
    assert not at.exception
    moved = tokens_of(shown(at)[0])
    assert len(moved) == 64 and moved != first and moved[:44] == first[20:]  # the same tokens, shifted by 20
    assert any("Tokens 20-83" in m.value for m in at.markdown)

    at.number_input(key="headview_length").set_value(16).run()
    assert not at.exception
    short, html16 = shown(at)
    assert tokens_of(short) == moved[:16] and len(short["attention"][0]["attn"][0][0]) == 16
    assert len(html16) < len(html) / 3

    at.multiselect(key="headview_layers").set_value([2, 4]).run()
    assert shown(at)[0]["include_layers"] == [2, 4]

    at.radio(key="headview_mode").set_value("model").run()
    assert not at.exception
    model = shown(at)[0]
    assert model["display_mode"] == "light" and model["total_heads"] == 1 and tokens_of(model) == moved[:16]
    at.multiselect(key="headview_heads").set_value([3, 7, 11]).run()
    model, html = shown(at)
    assert model["include_heads"] == [3, 7, 11] and len(model["attention"][0]["attn"][0]) == 3

    at.multiselect(key="headview_layers").set_value([]).run()
    assert not at.exception and not at.get("iframe")
    assert any("at least one layer and one head" in i.value for i in at.info)


def test_span_starts_at_the_first_global_token():
    at = head_view_page(**{"global": "100, 140"})
    assert at.slider(key="headview_start").value == 100 - 64 // 4
    tokens = tokens_of(shown(at)[0])
    assert tokens[16].startswith(headview.GLOBAL_MARK) and tokens[56].startswith(headview.GLOBAL_MARK)
    assert sum(t.startswith(headview.GLOBAL_MARK) for t in tokens) == 2
