"""AppTest: SmolLM2 (a causal LM) in the app: every page runs, the Pattern page draws the causal band (nothing
above the diagonal), the lab compares perplexity, the Scaling page says what it measures."""
import json

import numpy as np
import pytest

from apptools import PAGES, chart, new_app, values

pytestmark = pytest.mark.slow
DOC = "The keeper lit the lamp at dusk and climbed down at dawn. " * 20  # ~260 tokens


@pytest.fixture(scope="module")
def app():
    at = new_app(300)
    at.session_state["document"], at.session_state["sample"] = DOC, "custom"
    at.session_state["model"], at.session_state["window"], at.session_state["global"] = "smollm2", "32", "0, 1, 2, 3"
    return at.run()


def test_every_page_runs_on_a_causal_model(app):
    assert not app.exception and "previous tokens" in app.sidebar.text_input(key="sidebar_window").label
    for page in PAGES:
        app.switch_page(page).run()
        assert not app.exception and not app.error, (page, app.exception, [e.value for e in app.error])


def test_the_pattern_is_causal(app):
    app.switch_page("pages/pattern.py").run()
    z = values(chart(app, "Longformer")["data"][0]["z"])
    assert np.triu(z, k=1).max() == 0 and z.diagonal().min() > 0  # keys at or before each query only
    full = values(chart(app, "Full causal attention")["data"][0]["z"])
    assert np.triu(full, k=1).max() == 0 and full.min() == 0
    assert any("causal: each token attends itself and 16 previous tokens" in c.value for c in app.caption)


def test_the_lab_compares_perplexity(app):
    app.switch_page("pages/global_lab.py").run()
    bars = chart(app, "baseline vs variant")
    assert bars["data"][0]["x"][0] == "perplexity"
    assert "next-token loss" in chart(app, "Tokens by next-token loss")["layout"]["title"]["text"]
    assert any("perplexity = exp of the mean next-token loss" in c.value for c in app.caption)


def test_the_lab_shows_where_the_window_hurts(app):
    app.switch_page("pages/global_lab.py").run()
    assert any("laid over the text" in c.value for c in app.caption)  # the map over the text (browser-drawn)
    strip = chart(app, "The same by position")
    up = values(strip["data"][0]["y"])
    assert np.isnan(up[0]) and np.nanmax(up) > 0.01  # window 32 loses context somewhere
    assert np.allclose(up[1:17], 0, atol=2e-3)  # the first tokens see everything before them anyway
    metric = next(m for m in app.metric if m.label.startswith("Perplexity of tokens"))
    app.number_input(key="lab_region_start").set_value(100).run()
    assert next(m for m in app.metric if m.label.startswith("Perplexity of tokens 100-")).value != metric.value
    app.number_input(key="lab_next_at").set_value(5).run()
    table = next(d.value for d in app.dataframe if "full attention" in d.value.columns)
    assert len(table) == 5 and table["p (variant)"].is_monotonic_decreasing
    assert any("After token 5" in c.value for c in app.caption)
    tokens = values(chart(app, "Tokens by next-token loss")["data"][0]["text"])
    assert not any("Ġ" in t for t in tokens)  # byte-level BPE shown as text


def test_scaling_says_it_measures_encoders(app):
    app.switch_page("pages/scaling.py").run()
    assert any("causal language model" in i.value for i in app.info)


def test_fidelity_measures_perplexity_against_full_attention(app):
    app.switch_page("pages/fidelity.py").run()
    assert not app.exception and any("perplexity under the pattern" in c.value for c in app.caption)
    table = next(d.value for d in app.dataframe if "placement" in d.value.columns)
    named = {r["placement"]: r for r in table.to_dict("records")}
    assert named["sidebar (in force)"]["perplexity ratio"] == pytest.approx(1 + named["sidebar (in force)"]["distance"], abs=1e-4)
    assert named["no global tokens"]["distance"] > 0.1  # 16 previous tokens lose context on this text
    assert "What reaches token" in chart(app, "What reaches token")["layout"]["title"]["text"]


def test_switching_to_smollm2_starts_with_its_sinks():
    """Issue 20: the switch dropped global token 0 with a false 'The text changed' note that stayed on every page."""
    at = new_app(300).run()
    assert at.session_state["global"] == "0"
    at.selectbox(key="model_choice").set_value("smollm2").run()
    assert not at.exception and at.session_state["global"] == "0, 1, 2, 3"
    notes = [i.value for i in at.sidebar.info]
    assert any("The model changed" in n for n in notes) and not any("text changed" in n for n in notes)
    at.switch_page("pages/pattern.py").run()
    assert not any("model changed" in i.value for i in at.sidebar.info)


def test_the_lab_shows_the_document_under_a_question(app):
    """Issue 20: with a question, the loss map and the text picker showed only the question."""
    app.session_state["question"] = "When did the keeper climb down?"
    app.session_state["lab_text_box"] = True
    app.switch_page("pages/global_lab.py").run()
    assert not app.exception
    pieces = [json.loads(el.proto.json)["pieces"] for el in app.get("bidi_component")]
    assert len(pieces) == 2  # the loss map and the text picker
    for view in pieces:
        question, document = "".join(p.get("h", "") + p["t"] for p in view).split("\n", 1)
        assert question.startswith("Question: When did the keeper climb down?")
        assert document.rstrip() == DOC.rstrip()
