"""AppTest of the Attention page, driven through its keyed widgets and the shared session keys.

The configuration lives in plain session keys (the sidebar widgets write there); the tests set and read those keys
directly."""
import html
import json
import math
import re

import numpy as np
from apptools import chart, open_page, values

from lfviz.samples import list_samples

DOC = "Hello <script>alert(1)</script> world & friends. The board approved the budget. " * 4


def page(document=DOC, **state):
    return open_page("attention", document, **state)


def rerun(at, **state):
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception
    return at


def title(spec):
    return spec["layout"]["title"]["text"]


def band(at):
    """The band heatmap's trace."""
    return chart(at, ": band")["data"][0]


def band_title(at):
    return title(chart(at, ": band"))


def text_view(at):
    (el,) = at.get("html")
    return el.proto.body


def test_page_shows_every_view_for_a_short_document():
    at = page()
    n = len(band(at)["y"])
    trace = band(at)
    # window 512 on n < 257 tokens: the band keeps the offsets that reach a key, n - 1 per side (never wider)
    assert values(trace["z"]).shape == (n, 2 * (n - 1) + 1) and n < 257
    assert values(trace["x"])[0] == -(n - 1) and values(trace["x"])[-1] == n - 1
    assert f"window 512 (two-sided; {2 * (n - 1)} used, which covers the text)" in at.markdown[0].value
    assert trace["y"][:2] == ["0 [CLS]", "1 hello"] and "one row per token" in band_title(at)
    rows = values(chart(at, "what each global token attends to")["data"][0]["y"])
    assert rows.shape == (n,) and abs(rows.sum() - 1) < 1e-2  # token 0 is global by default
    grid = chart(at, "Head overview")
    assert values(grid["data"][0]["z"]).shape == (6, 12)
    assert at.get("dataframe")[-1].value.shape[0] == 6 * 12
    assert at.get("download_button")[-1].proto.label == "Download CSV"


def test_text_view_escapes_the_document():
    at = page()
    body = text_view(at)
    assert "<script" not in body.lower() and "</script" not in body.lower()
    assert "&lt;" in body and "&amp;" in body
    shown = html.unescape(re.sub(r"<[^>]+>", "", body))
    assert "Hello <script>alert(1)</script> world & friends." in shown
    before = body
    at.toggle(key="attention_recv_mean").set_value(True).run()
    assert not at.exception and text_view(at) != before
    assert "mean over heads" in " ".join(c.value for c in at.caption)


def test_band_follows_head_layer_window_and_dilation():
    at = page()
    z0 = values(band(at)["z"])
    at = rerun(at, head=3)
    z_head = values(band(at)["z"])
    assert "head 3" in band_title(at) and not np.allclose(z0, z_head)
    at = rerun(at, layer=2)
    assert "Layer 2, head 3" in band_title(at) and not np.allclose(z_head, values(band(at)["z"]))
    at = rerun(at, window="8")
    assert values(band(at)["x"]).tolist() == [-4, -3, -2, -1, 0, 1, 2, 3, 4]
    at = rerun(at, dilation="2")
    assert values(band(at)["x"]).tolist() == [-8, -6, -4, -2, 0, 2, 4, 6, 8]
    assert "dilation 2" in json.dumps(chart(at, ": band")["layout"]["xaxis"])


def test_zoom_span_rows_keys_and_values():
    at = page()
    n = len(band(at)["y"])
    at.slider(key="attention_zoom_len").set_value(n).run()  # the whole document: every row sums to 1
    z = values(chart(at, "queries 0-")["data"][0]["z"])
    assert z.shape == (n, n) and np.allclose(z.sum(1), 1, atol=1e-2)
    at.number_input(key="attention_zoom_start").set_value(5).run()
    at.slider(key="attention_zoom_len").set_value(10).run()
    spec = chart(at, "queries 5-14")
    assert spec["data"][0]["y"] == band(at)["y"][5:15] and spec["data"][0]["x"] == spec["data"][0]["y"]
    at.checkbox(key="attention_zoom_separate").check().run()
    at.number_input(key="attention_zoom_key_start").set_value(20).run()
    assert not at.exception
    spec = chart(at, "keys 20-29")
    assert spec["data"][0]["x"] == band(at)["y"][20:30] and values(spec["data"][0]["z"]).shape == (10, 10)


def test_global_tokens_empty_state_and_button():
    at = page(**{"global": ""})
    infos = " ".join(i.value for i in at.info)
    assert "make a token global in the sidebar or the Global-token lab" in infos
    at.button(key="attention_first_global").click().run()
    assert not at.exception and at.session_state["global"] == "0"
    at = rerun(at, **{"global": "0, 5"})
    given = chart(at, "what every token gives each global token")
    labels = band(at)["y"]
    assert [t["name"] for t in given["data"]] == [labels[0], labels[5]] == ["0 [CLS]", "5 alert"]
    table = at.get("dataframe")[0].value
    assert table["position"].tolist() == [0, 5]


def test_head_overview_metric_selector():
    at = page()
    dist = values(chart(at, "Head overview")["data"][0]["z"])
    assert (dist > 0).all()
    at.selectbox(key="attention_grid_metric").set_value("entropy").run()
    spec = chart(at, "Head overview: entropy")
    ent = values(spec["data"][0]["z"])
    n = len(band(at)["y"])
    assert ent.shape == (6, 12) and (ent > 0).all() and (ent <= math.log(n) + 1e-3).all()
    at.selectbox(key="attention_grid_metric").set_value("global_share").run()
    share = values(chart(at, "Head overview: share")["data"][0]["z"])
    assert ((share >= 0) & (share <= 1)).all() and not np.allclose(share, ent)
    at = rerun(at, **{"global": ""})
    assert np.allclose(values(chart(at, "Head overview: share")["data"][0]["z"]), 0)


def test_long_document_is_pooled_and_the_text_view_scrolls():
    sample = next(s for s in list_samples() if s.id == "qa_passage")  # ~1,400 tokens
    at = page(sample.text, question=sample.question)
    trace = band(at)
    z = values(trace["z"])
    assert z.shape == (len(trace["y"]), 513) and z.shape[0] <= 600
    assert trace["y"][0] == "0-2" and "rows: max over 3 tokens" in band_title(at)
    at.radio(key="attention_band_pool").set_value("mean").run()
    assert "rows: mean over 3 tokens" in band_title(at)
    assert values(band(at)["z"]).max() < z.max()
    assert text_view(at).count("<span") == 1000
    at.slider(key="attention_recv_start").set_value(200).run()
    assert not at.exception
    assert re.search(r'<span title="(\d+) ', text_view(at)).group(1) == "200"


def test_spikes_from_copied_positions_are_explained_where_they_show():
    at = open_page("attention", "Every clause of the lease names the tenant and the landlord again. " * 60)
    assert any("position embeddings are the original 512 copied" in c.value for c in at.caption)
    short = open_page("attention", "A short text.")
    assert not any("copied over" in c.value for c in short.caption)
