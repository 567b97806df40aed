"""AppTest, issue 20 (items 5 and 6): the views of a document read with a question, and a switch to a causal model.

The causal model here is the tiny random Llama of conftest (`tiny_causal`, the embedded tokenizer) put in the app
under the key "smollm2" (`serving.BUILT_IN`), so the app's own logic runs in seconds; the real SmolLM2 cases are in
tests/app/test_app_causal.py (slow)."""
import html
import json
import re

import pytest
import streamlit as st
from apptools import new_app, open_page

from lfviz.app import serving
from lfviz.samples import get_sample

QA = get_sample("qa_passage")
SHORT = "\n\n".join(QA.text.split("\n\n")[:4])  # within the tiny causal model's 1,024 positions


def component_text(at, key: str) -> str:
    """What the text component with this key shows: its pieces' headings and text, in order."""
    def walk(node):
        for child in (node.children.values() if isinstance(getattr(node, "children", None), dict) else ()):
            if getattr(child, "type", None) == "bidi_component" and child.proto.id.endswith(key):
                return child
            found = walk(child)
            if found is not None:
                return found
        return None

    element = walk(at._tree)
    assert element is not None, f"no text component {key!r}"
    return "".join(p.get("h", "") + p["t"] for p in json.loads(element.proto.json)["pieces"])


@pytest.fixture
def causal_app(monkeypatch, tiny_causal):
    """The app's "smollm2" key loads the tiny causal runner; caches are cleared around the test so no other test
    meets it."""
    monkeypatch.setitem(serving.BUILT_IN, "smollm2", lambda: tiny_causal)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def test_received_over_the_text_shows_the_question_apart():
    """The defect: question tokens painted over the document's first characters, and '[SEP]' inside 'Carrow
    Point[SEP] Lighthouse'."""
    at = open_page("attention", QA.text, question=QA.question, queries=list(QA.queries))
    (el,) = at.get("html")
    shown = html.unescape(re.sub(r"<[^>]+>", "", el.proto.body))
    question, document = shown.split("\n", 1)
    assert question == "[CLS] Question: Who designed Carrow Point Lighthouse? [SEP]"
    assert document.startswith("Carrow Point Lighthouse\n\nCarrow Point Lighthouse is a disused lighthouse")
    assert "[SEP]" not in document[:5000] and "who designed" not in document.lower()


def test_the_lab_text_picker_with_a_question():
    at = open_page("global_lab", QA.text, question=QA.question, lab_text_box=True)
    shown = component_text(at, "lab_text")
    assert shown.startswith("[CLS] Question: Who designed Carrow Point Lighthouse? [SEP]\nCarrow Point Lighthouse\n\n")


def test_causal_lab_shows_the_document_under_the_question(causal_app):
    """The defect: with a causal LM and a question, the loss map and the text picker showed only the question."""
    at = open_page("global_lab", SHORT, model="smollm2", question=QA.question, window="32",
                   **{"global": "0, 1, 2, 3"}, lab_text_box=True)
    for key in ("lab_loss_text", "lab_text"):
        question, document = component_text(at, key).split("\n", 1)
        assert question.startswith("Question: Who designed Carrow Point Lighthouse?")
        assert document.rstrip() == SHORT.rstrip()  # the whole document, in its own characters


def sidebar_notes(at) -> list[str]:
    return [i.value for i in at.sidebar.info]


def test_switching_to_a_causal_model_starts_with_its_sinks(causal_app):
    """The defect: the switch dropped global token 0 with a false 'The text changed' note that then stayed on
    every page."""
    at = new_app().run()
    at.session_state["document"], at.session_state["sample"] = SHORT, "custom"
    at.run()
    assert at.session_state["global"] == "0"
    at.selectbox(key="model_choice").set_value("smollm2").run()
    assert not at.exception and at.session_state["global"] == "0, 1, 2, 3"
    notes = sidebar_notes(at)
    assert not any("text changed" in n for n in notes)
    assert any("The model changed" in n and "0, 1, 2, 3" in n and "sinks" in n for n in notes)
    at.run()  # the same page again (a widget, a rerun): the note is still where it was made
    assert any("The model changed" in n for n in sidebar_notes(at))
    at.switch_page("pages/attention.py").run()
    assert not at.exception and not any("model changed" in n for n in sidebar_notes(at))  # not on every page
    at.switch_page("pages/document.py").run()
    assert not any("model changed" in n for n in sidebar_notes(at))
    at.selectbox(key="model_choice").set_value("embedded").run()  # back: the encoder's own start
    assert at.session_state["global"] == "0" and not any("text changed" in n for n in sidebar_notes(at))


def test_global_tokens_chosen_for_the_causal_model_are_kept(causal_app):
    at = new_app()
    at.query_params["model"], at.query_params["global"] = "smollm2", "5, 9"  # a link that says both
    at.session_state["document"], at.session_state["sample"] = SHORT, "custom"
    at.run()
    assert not at.exception and at.session_state["global"] == "5, 9"
    fresh = new_app()
    fresh.query_params["model"] = "smollm2"  # a link to the causal model that says nothing of global tokens
    fresh.session_state["document"], fresh.session_state["sample"] = SHORT, "custom"
    fresh.run()
    assert fresh.session_state["global"] == "0, 1, 2, 3"
    at.session_state["global"] = "7"  # set anew together with a model switch (as a page opening a run does)
    at.session_state["model"] = "embedded"
    at.run()
    assert at.session_state["global"] == "7" and not sidebar_notes(at)


def test_back_to_a_model_restores_the_global_tokens_chosen_for_it(causal_app):
    at = new_app().run()
    at.session_state["document"], at.session_state["sample"] = SHORT, "custom"
    at.run()
    at.selectbox(key="model_choice").set_value("smollm2").run()
    at.session_state["global"] = "0, 1, 2, 3, 9"  # the user's own choice for the causal model
    at.run()
    at.selectbox(key="model_choice").set_value("embedded").run()
    assert at.session_state["global"] == "0"
    at.selectbox(key="model_choice").set_value("smollm2").run()
    assert at.session_state["global"] == "0, 1, 2, 3, 9"
    assert any("it had on this text: 0, 1, 2, 3, 9" in n for n in sidebar_notes(at))
