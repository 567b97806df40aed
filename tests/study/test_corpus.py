"""Reading a corpus: a folder of .txt files, JSON Lines, Parquet; unreadable documents recorded, not fatal; the
corpus itself refused with a message that says what to fix. Strategies parsed from their command-line names."""
import json

import pandas as pd
import pytest

from lfviz.study.corpus import read_corpus
from lfviz.study.strategies import Strategy, parse_strategies, placement


def test_a_folder_of_text_files(tmp_path):
    (tmp_path / "b.txt").write_text("Second document.", encoding="utf-8")
    (tmp_path / "a.txt").write_text("First document.", encoding="utf-8")
    (tmp_path / "c.txt").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "d.txt").write_text("   ")
    (tmp_path / "notes.md").write_text("ignored")
    docs = read_corpus(tmp_path)
    assert [(d.index, d.id) for d in docs] == [(0, "a"), (1, "b"), (2, "c"), (3, "d")]
    assert docs[0].text == "First document." and docs[0].error is None
    assert "UTF-8" in docs[2].error and docs[3].error == "empty document"


def test_json_lines_with_ids_questions_and_bad_lines(tmp_path):
    lines = [json.dumps({"id": "x1", "text": "A contract.", "question": "Who pays?"}), "{not json", "",
             json.dumps({"text": "No id here."}), json.dumps({"id": 7, "body": "no text field"}), json.dumps([1, 2])]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines))
    docs = read_corpus(path)
    assert [d.id for d in docs] == ["x1", "line 2", "line 4", "7", "line 6"]
    assert docs[0].question == "Who pays?" and docs[2].text == "No id here."
    assert "not JSON" in docs[1].error and "no text" in docs[3].error and "not an object" in docs[4].error


def test_parquet_with_a_text_column(tmp_path):
    path = tmp_path / "c.parquet"
    pd.DataFrame({"id": ["p", "q"], "text": ["One.", None], "question": [None, "Why?"]}).to_parquet(path)
    docs = read_corpus(path)
    assert docs[0].text == "One." and docs[0].question is None and docs[1].error.startswith("no text")
    pd.DataFrame({"body": ["x"]}).to_parquet(tmp_path / "nope.parquet")
    with pytest.raises(ValueError, match="no 'text' column"):
        read_corpus(tmp_path / "nope.parquet")


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such corpus"),
    (lambda p: (p / "c.csv").write_text("text\nx") and p / "c.csv", "unknown corpus format"),
    (lambda p: (p / "e").mkdir() or p / "e", "no .txt files"),
    (lambda p: (p / "d.jsonl").write_text('{"id": 1, "text": "a"}\n{"id": 1, "text": "b"}') and p / "d.jsonl",
     "unique"),
    (lambda p: (p / "bad.parquet").write_bytes(b"PAR1 broken") and p / "bad.parquet", "not a readable Parquet"),
])
def test_a_corpus_that_cannot_be_read_says_what_to_fix(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        read_corpus(make(tmp_path))


def test_strategies_from_their_names():
    got = parse_strategies("first, question,every-k:256,advisor:8,first,evenly:4")
    assert [s.name for s in got] == ["first", "question", "every-k:256", "advisor:8", "evenly:4"]  # once each
    assert got[2] == Strategy("every-k:256", "every-k", 256)
    for bad, message in [("firsts", "unknown strategy"), ("every-k", "give a number"), ("first:3", "takes no"),
                         ("advisor:0", "1 to"), ("advisor:x", "1 to"), (" , ", "no strategies")]:
        with pytest.raises(ValueError, match=message):
            parse_strategies(bad)


def test_placements_in_a_document():
    tokens = ["[CLS]", "a", "b", ".", "c", "d", ".", "[SEP]"]
    place = lambda name: placement(parse_strategies(name)[0], tokens, None, None, (1, 2))
    assert place("none") == () and place("first") == (0,) and place("first-k:3") == (0, 1, 2)
    assert place("question") == (1, 2) and place("every-k:3") == (0, 3, 6) and place("evenly:2") == (0, 4)
    assert place("sentence-starts") == (1, 4)
