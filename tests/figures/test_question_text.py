"""Issue 20, item 5: text views of a document read with a question. The question's tokens are no characters of
the document: every view shows the question apart (its own line, after "Question:") and the document under it,
whole and in its own characters, for both model kinds (the embedded encoder reads "[CLS] question [SEP] text
[SEP]", a causal LM "question\\n\\ntext")."""
import html
import re

import numpy as np
import pytest

from lfviz.analysis import presets
from lfviz.figures.attention import received_html
from lfviz.figures.token_text import text_pieces, token_parts
from lfviz.samples import get_sample

QA = get_sample("qa_passage")


def shown(pieces) -> str:
    return "".join(p.get("h", "") + p["t"] for p in pieces)


def visible(body: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def check_question_then_document(t, question: str, text: str):
    """The text view of tokenized `t`: the question on the first line, then the document, every character."""
    pieces = text_pieces(t.tokens, t.offsets, text, question=question)
    first, rest = shown(pieces).split("\n", 1)
    assert "Question: " + question in first  # the question's own characters, not word pieces
    assert rest.removesuffix(" [SEP]") == text.rstrip()  # the whole document, nothing of the question inside it
    asked = [p["p"] for p in pieces if p.get("q")]
    assert asked and set(t.question_tokens) <= set(asked) and max(asked) < min(
        p["p"] for p in pieces if not p.get("q") and not p["s"] and p["p"] > 0)
    return pieces


@pytest.mark.slow
def test_the_encoder_offsets_index_the_document_only(embedded):
    t = embedded.tokenize(QA.text, QA.question)
    assert t.question_tokens and all(t.offsets[i] == (0, 0) for i in t.question_tokens)
    assert all(t.offsets[i][1] > t.offsets[i][0] for i, c in enumerate(t.context) if c)
    # so the word search finds the document's words, never a question token that happens to sit at those offsets
    found = presets.matching("Lighthouse", t.tokens, t.offsets, QA.text)
    assert found and all(t.context[i] for i in found)


@pytest.mark.slow
def test_the_encoder_text_view_shows_the_question_apart(embedded):
    t = embedded.tokenize(QA.text, QA.question)
    check_question_then_document(t, QA.question, QA.text)


@pytest.mark.slow
def test_received_over_the_text_with_a_question(embedded):
    """The defect: question tokens painted over the document's first characters, '[SEP]' inside 'Carrow
    Point[SEP] Lighthouse'."""
    t = embedded.tokenize(QA.text, QA.question)
    values = np.linspace(0, 1, len(t.tokens))
    out = visible(received_html(QA.text, t.tokens, t.offsets, values, 0, 120, 1.0, QA.question))
    assert out.startswith("[CLS] Question: Who designed Carrow Point Lighthouse? [SEP]\nCarrow Point Lighthouse\n\n"
                          "Carrow Point Lighthouse is a disused lighthouse")
    assert "[SEP]" not in out.split("\n", 1)[1]
    page = visible(received_html(QA.text, t.tokens, t.offsets, values, 200, 260, 1.0, QA.question))
    assert "Question" not in page and page.split()[0] in QA.text  # a later span: document characters only


def test_the_causal_text_view_shows_the_document(tiny_causal):
    """The defect: with a question, the causal runner's document tokens were read as the question's characters,
    so the lab's loss map and text picker showed only the question."""
    text = "\n\n".join(QA.text.split("\n\n")[:4])  # within the tiny model's 1,024 positions
    t = tiny_causal.tokenize(text, QA.question)
    assert t.question_tokens == list(range(len(t.question_tokens))) and not t.warnings  # the question comes first
    pieces = check_question_then_document(t, QA.question, text)
    losses = [float("nan")] + [0.1] * (len(t.tokens) - 1)
    mapped = text_pieces(t.tokens, t.offsets, text, 100, 300, question=QA.question, values=losses)
    assert shown(mapped).strip() in text and all("c" in p for p in mapped)  # a page of the loss map
    assert len(pieces) == len(t.tokens)


def test_a_run_with_a_question_and_without_offsets_still_reads():
    pieces = text_pieces(["who", "?", "the", "keep", "##er"], None, None, question="Who?")
    assert shown(pieces) == "who ? the keeper"


def test_token_parts_of_both_conventions():
    q = "Who lit it?"
    text = "The keeper lit it."
    # an encoder's pair (offsets of the document only), a causal LM's "question\n\ntext", and a run saved before
    # question offsets were (0, 0): all three say the same thing
    enc = token_parts(["[CLS]", "who", "lit", "it", "?", "[SEP]", "the", "keeper", "[SEP]"],
                      [(0, 0)] * 6 + [(0, 3), (4, 10), (0, 0)], q)
    causal = token_parts(["Who", " lit", " it", "?", "\n\n", "The", " keeper"],
                         [(0, 0)] * 5 + [(0, 3), (3, 10)], q)
    old = token_parts(["[CLS]", "who", "lit", "it", "?", "[SEP]", "the", "keeper", "[SEP]"],
                      [(0, 0), (0, 3), (4, 7), (8, 10), (10, 11), (0, 0), (0, 3), (4, 10), (0, 0)], q)
    assert enc == old
    assert [p for p in enc if p[0] == "question"] == [("question", 0, 3), ("question", 4, 7), ("question", 8, 10),
                                                       ("question", 10, 11)]
    assert causal[:4] == enc[1:5] and causal[4] == ("question", 0, 0)  # the blank line is not in the question
    assert causal[5:] == [("text", 0, 3), ("text", 3, 10)] and enc[6:8] == [("text", 0, 3), ("text", 4, 10)]
    assert shown(text_pieces(["Who", " lit", " it", "?", "\n\n", "The", " keeper"], [(0, 0)] * 5 + [(0, 3), (3, 10)],
                             text, question=q)) == "Question: Who lit it?\u21b5\nThe keeper"
    assert token_parts(["[CLS]", "the", "[SEP]"], [(0, 0), (0, 3), (0, 0)]) == [
        ("special", 0, 0), ("text", 0, 3), ("special", 0, 0)]  # no question: nothing changes
