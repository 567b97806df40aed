"""AppTest of the Study page: a small study run on the samples, results opened from a file (failures listed), a
bad path refused, and a document opened in the lab with the strategy's global tokens."""
from apptools import chart, new_app

from lfviz.config import AttentionConfig
from lfviz.samples import list_samples
from lfviz.study.job import run_study


def study_page():
    at = new_app(300)
    at.session_state["window"] = "64"
    at.run()
    at.switch_page("pages/study.py").run()
    assert not at.exception
    return at


def test_run_a_samples_study_and_open_the_worst_document_in_the_lab():
    at = study_page()
    assert any("Open a study's results" in i.value for i in at.info)
    at.session_state["queries"] = ["left over from another sample"]
    captions = " ".join(c.value for c in at.caption)
    assert "a few seconds per document" not in captions and "a minute or more" in captions  # measured: 66 s
    at.multiselect(key="study_strategies").set_value(["none", "first"])
    at.button(key="study_run").click().run()
    assert not at.exception and not at.error
    summary = next(d.value for d in at.dataframe if "closest share" in d.value.columns)
    assert list(summary["strategy"]) == ["none", "first"] and (summary["documents"] == len(list_samples())).all()
    assert len(chart(at, "by strategy")["data"]) == 2 and chart(at, "against document length")
    at.selectbox(key="study_strategy").set_value("first").run()
    worst = next(d.value for d in at.dataframe if "global_tokens" in d.value.columns)
    doc = worst.iloc[0]["id"]
    at.selectbox(key="study_doc").set_value(doc)
    at.button(key="study_open").click().run()
    assert not at.exception
    sample = next(s for s in list_samples() if s.id == doc)
    assert at.session_state["document"] == sample.text and at.session_state["global"] == "0"
    # a sample opens as itself, with its own queries and question: a link can carry it
    assert at.session_state["sample"] == sample.id and at.session_state["queries"] == list(sample.queries)
    assert at.session_state["question"] == sample.question
    assert at.session_state["window"] == "64" and any("Global-token lab" in t.value for t in at.title)


def test_open_results_from_a_file_and_a_bad_path(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "one.txt").write_text("The board approved the budget. " * 10)
    (corpus / "two.txt").write_bytes(b"\xff\xfe\x00")
    out = tmp_path / "r.parquet"
    run_study(corpus, out, config=AttentionConfig(window=16), strategies="none,every-k:8")
    at = study_page()
    at.text_input(key="study_path").set_value(str(tmp_path / "missing.parquet")).run()
    assert not at.exception and any("not a study's results file" in e.value for e in at.error)
    at.text_input(key="study_path").set_value(str(out)).run()
    assert not at.exception and not at.error
    failed = next(d.value for d in at.dataframe if list(d.value.columns) == ["id", "error"])
    assert list(failed["id"]) == ["two"] and "UTF-8" in failed["error"].iloc[0]
    assert any("2 documents from" in t.value for t in at.text)
