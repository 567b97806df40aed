"""AppTest: state that follows the user (issue: the app as a newcomer meets it). Each test replays the scenario
that exposed a defect: samples and their queries, global tokens through text changes, a model switch shown at
once, links that carry queries, question and tab, and costs bounded by the text."""
import json

import torch

from apptools import new_app

from lfviz.app import cache as app_cache
from lfviz.samples import get_sample


def test_a_sample_brings_its_queries_question_and_answer():
    at = new_app().run()
    assert at.session_state["sample"] == "contract"
    at.selectbox(key="sample_choice").set_value("qa_passage").run()
    qa = get_sample("qa_passage")
    assert at.session_state["queries"] == list(qa.queries)
    assert at.text_area(key="queries_text").value == "\n".join(qa.queries)  # the widget shows them too
    assert at.text_input(key="question_text").value == qa.question == at.session_state["question"]
    assert any("Josiah Penhallow" in c.value for c in at.caption)  # the stored answer
    at.selectbox(key="sample_choice").set_value("article").run()
    assert at.text_area(key="queries_text").value == "\n".join(get_sample("article").queries)
    assert at.text_input(key="question_text").value == "" and at.session_state["question"] is None
    at.text_area(key="queries_text").set_value("carbon\n\n  peat  ").run()
    assert at.session_state["queries"] == ["carbon", "peat"]


def test_global_tokens_follow_their_tokens_when_the_text_changes():
    at = new_app().run()
    tokens = app_cache.tokenized("embedded", at.session_state["document"], None)["tokens"]
    at.session_state["global"] = "0, 40"
    at.run()
    word = tokens[40]
    at.text_area(key="doc_text").set_value("A new opening sentence. " + at.session_state["document"]).run()
    positions = [int(p) for p in at.session_state["global"].split(",")]
    new_tokens = app_cache.tokenized("embedded", at.session_state["document"], None)["tokens"]
    assert positions[0] == 0 and positions[1] > 40 and new_tokens[positions[1]] == word
    assert any(f"'{word}' moved to {positions[1]}" in i.value for i in at.sidebar.info)
    at.session_state["global"] = "0, 3000"
    at.run()
    at.selectbox(key="sample_choice").set_value("qa_passage").run()  # a much shorter, different text
    assert not at.exception and at.session_state["global"] == "0" and not at.error
    assert any("3000" in i.value and "dropped" in i.value for i in at.sidebar.info)


def test_a_model_switch_shows_everywhere_in_the_same_run():
    at = new_app().run()
    at.selectbox(key="model_choice").set_value("embedded-16k").run()
    assert not at.exception and at.session_state["model"] == "embedded-16k"
    assert any("up to 16,384 tokens" in c.value for c in at.sidebar.caption)
    assert at.query_params["model"] == "embedded-16k"
    assert at.selectbox(key="sample_choice").value == at.session_state["sample"]


def test_links_carry_queries_question_and_tab_and_say_when_text_cannot_travel():
    at = new_app().run()
    at.text_area(key="queries_text").set_value("fees\nrenewal").run()
    at.text_input(key="question_text").set_value("When does it end?").run()
    at.switch_page("pages/attention.py").run()
    at.session_state["attention_tab"] = "Global tokens"
    at.run()
    qp = dict(at.query_params)
    assert qp["queries"] == "fees\nrenewal" and qp["question"] == "When does it end?" and qp["tab"] == "Global tokens"
    receiver = new_app()
    receiver.query_params.update(qp)
    receiver.run()
    ss = receiver.session_state
    assert ss["queries"] == ["fees", "renewal"] and ss["question"] == "When does it end?"
    assert ss["attention_tab"] == "Global tokens" and not receiver.exception
    at.switch_page("pages/document.py").run()
    at.text_area(key="doc_text").set_value("My own pasted text about fees.").run()
    assert at.query_params["sample"] == "custom"
    assert any("not your own text" in c.value for c in at.caption)
    receiver = new_app()
    receiver.query_params.update(dict(at.query_params))
    receiver.run()
    assert any("cannot carry" in w.value and "export" in w.value for w in receiver.sidebar.warning)


def test_a_window_wider_than_the_text_costs_what_the_text_needs():
    """Window 100000 on a short text: accepted, run, and stored as the widest useful window (never 100001
    columns per row), so time and memory follow the text."""
    at = new_app()
    doc = "A short text with a window far wider than itself. " * 20
    at.session_state["document"], at.session_state["sample"] = doc, "custom"
    at.run()
    at.sidebar.text_input(key="sidebar_window").set_value("100000").run()
    at.switch_page("pages/attention.py").run()
    assert not at.exception and not at.error and at.session_state["window"] == "100000"
    res = app_cache._cached_run("embedded", doc, json.dumps({"window": 100000, "dilation": 1, "global_tokens": [0]}),
                                tuple(), None, True)
    n = res.n
    assert res.capture.band(0).shape == (12, n, 2 * (n - 1) + 1) and res.capture.band(0).dtype == torch.float16
    assert "100000 (two-sided; " in at.markdown[0].value


def test_unknown_characters_and_truncation_are_explained():
    at = new_app()
    at.session_state["document"], at.session_state["sample"] = "مرحبا بالعالم 你好世界 🙂🙂🙂 " * 20, "custom"
    at.run()
    assert any("unknown to this model's vocabulary" in w.value for w in at.warning)
    at.text_area(key="doc_text").set_value("word " * 9000).run()
    warning = next(w.value for w in at.warning if "Truncated" in w.value)
    assert "9,002 tokens" in warning and "4,096" in warning
    assert any("16,384 tokens" in i.value for i in at.info)


def test_exports_show_their_size_first_and_never_exceed_what_the_app_opens(monkeypatch):
    from lfviz.app import state

    at = new_app().run()
    assert not any(c.value.startswith("About ") for c in at.caption)  # closed: nothing run for it
    at.session_state["doc_export_box"] = True
    at.run()
    box = next(c.value for c in at.caption if c.value.startswith("About "))
    assert "MB per layer of attention" in box and f"up to {state.MAX_EXPORT_MB} MB" in box
    at.multiselect(key="doc_export_layers").set_value([0, 1, 2, 3, 4, 5])
    at.checkbox(key="doc_export_hidden").check().run()
    monkeypatch.setattr(state, "MAX_EXPORT_MB", 60)  # one layer of the default document is ~48 MB in fp16
    at.run()
    assert any("more than the 60 MB the app can open" in w.value for w in at.warning)
    assert at.button(key="doc_export_prepare").disabled
    at.multiselect(key="doc_export_layers").set_value([0]).run()
    at.checkbox(key="doc_export_hidden").uncheck().run()
    assert not at.button(key="doc_export_prepare").disabled
    at.button(key="doc_export_prepare").click().run()
    assert len(at.session_state["_doc_export"]) < 60e6


def test_an_opened_export_is_shown_as_saved_without_running_the_model(monkeypatch):
    import lfviz
    import lfviz.model.runner

    runner = lfviz.load_runner("embedded", device="cpu")
    text = "An exported document about sliding windows and global tokens, with a question."
    saved = lfviz.load_result(runner.run(text, config=lfviz.AttentionConfig(window=32, global_tokens=(0, 3)),
                                         capture_layers=[2], queries=["windows"], question="What slides?",
                                         capture_dtype=torch.float16).to_bytes())
    at = new_app().run()
    at.session_state["_import_run"] = saved
    at.run()
    assert any("window 32 (two-sided), dilation 1, global tokens 0, 3" in t.value for t in at.text)
    at.button(key="doc_import_use").click().run()
    ss = at.session_state
    assert (ss["document"], ss["window"], ss["global"], ss["queries"], ss["question"], ss["layer"]) == \
        (text, "32", "0, 3", ["windows"], "What slides?", 2)

    def no_model(*a, **k):
        raise AssertionError("the model ran")

    monkeypatch.setattr(lfviz.model.runner.Runner, "run", no_model)
    at.switch_page("pages/attention.py").run()
    assert not at.exception and not at.error
    assert any("Showing the saved run from the export" in c.value for c in at.caption)
    assert "Layer 2, head 0" in at.markdown[0].value
