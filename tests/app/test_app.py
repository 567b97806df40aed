"""AppTest: the app opens on the embedded model with a sample, every page runs, links reopen a view.

The configuration lives in plain session keys (the sidebar widgets write there); the tests set and read those keys
directly."""
from apptools import PAGES, new_app


def test_document_page_is_alive():
    at = new_app().run()
    assert not at.exception
    assert "converted" in at.info[0].value.lower()
    tokens = at.metric[0].value
    assert int(tokens.replace(",", "")) > 1000  # a long sample is loaded
    at.text_area(key="doc_text").set_value("   ").run()
    assert not at.exception and any("empty" in w.value for w in at.warning)


def test_every_page_runs():
    at = new_app().run()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
    assert any("runs on the CPU, float32, blocked kernel" in c.value for c in at.sidebar.caption)


def test_link_reopens_the_same_view():
    at = new_app()
    at.query_params.update(window="64", dilation="1,1,2,2,1,1", sample="article", layer="3", head="5")
    at.query_params["global"] = "0, 7"
    at.run()
    assert not at.exception
    ss = at.session_state
    assert (ss["window"], ss["dilation"], ss["global"], ss["layer"], ss["head"]) == \
        ("64", "1,1,2,2,1,1", "0, 7", 3, 5)
    assert ss["sample"] == "article" and ss["document"].startswith(ss["document"][:10])
    assert any("Out of distribution" in w.value for w in at.sidebar.warning)  # dilation on a converted model
    assert at.query_params["window"] == "64" and at.query_params["global"] == "0, 7"


def test_malformed_link_keeps_defaults_and_says_why():
    at = new_app()
    at.query_params.update(window="7", sample="<script>", layer="x", model="http://evil")
    at.run()
    assert not at.exception
    ss = at.session_state
    assert ss["window"] == "512" and ss["layer"] == 0 and ss["model"] == "embedded"
    warnings = " ".join(w.value for w in at.sidebar.warning)
    assert "must be even" in warnings and "unknown sample" in warnings and "not a number" in warnings
    assert "embedded model" in warnings


def test_an_invalid_value_keeps_the_last_good_configuration_and_says_why_once():
    """Window 7 or an out-of-range global: the field keeps the typed text with one error below it, the last valid
    configuration stays in force (figures and the lab's controls stay), and the link never carries it."""
    at = new_app().run()
    at.switch_page("pages/attention.py").run()
    charts = len(at.get("plotly_chart"))
    at.sidebar.text_input(key="sidebar_window").set_value("7").run()
    assert not at.exception
    assert at.session_state["window"] == "512"  # still in force
    assert at.sidebar.text_input(key="sidebar_window").value == "7"  # the user's text stays, to be fixed
    assert [e.value for e in at.error] == [e.value for e in at.sidebar.error]  # next to the field, not the page
    assert len(at.error) == 1 and "must be even" in at.error[0].value and "Still in force: '512'" in at.error[0].value
    assert at.query_params["window"] == "512" and len(at.get("plotly_chart")) == charts
    at.switch_page("pages/global_lab.py").run()
    assert not at.exception and at.selectbox(key="lab_preset") and len(at.error) == 1
    at.sidebar.text_input(key="sidebar_global").set_value("0, 999999").run()
    assert at.session_state["global"] == "0" and at.query_params["global"] == "0"
    assert len(at.error) == 2 and "out of range" in at.error[1].value
    at.sidebar.text_input(key="sidebar_window").set_value("64").run()
    at.sidebar.text_input(key="sidebar_global").set_value("0, 5").run()
    assert (at.session_state["window"], at.session_state["global"]) == ("64", "0, 5") and not at.error
    assert at.query_params["window"] == "64"


def test_export_a_run_from_the_document_page(tmp_path):
    import lfviz

    at = new_app()
    at.session_state["document"] = "A short text to export. Global tokens see everything."
    at.session_state["sample"] = "custom"
    at.session_state["doc_export_box"] = True
    at.run()
    at.multiselect(key="doc_export_layers").set_value([0, 2])
    at.button(key="doc_export_prepare").click().run()
    assert not at.exception
    data = at.session_state["_doc_export"]
    (tmp_path / "run.safetensors").write_bytes(data)
    res = lfviz.load_result(tmp_path / "run.safetensors")
    assert res.capture.captured_layers == [0, 2] and res.tokens[0] == "[CLS]"
    assert res.config == lfviz.AttentionConfig(window=512, global_tokens=(0,))


def test_question_sample_and_question_field():
    at = new_app()
    at.query_params["sample"] = "qa_passage"
    at.run()
    assert not at.exception
    q = at.session_state["question"]
    assert q and at.text_input(key="question_text").value == q
    with_question = int(at.metric[0].value.replace(",", ""))
    at.text_input(key="question_text").set_value("").run()
    assert at.session_state["question"] is None
    assert int(at.metric[0].value.replace(",", "")) < with_question  # the question's tokens are gone


def test_gpu_out_of_memory_is_a_message_and_the_app_keeps_working(monkeypatch):
    import torch

    import lfviz.model.runner

    real_run = lfviz.model.runner.Runner.run

    def oom(self, *a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    at = new_app()
    at.session_state["document"], at.session_state["sample"] = "Some text to run on the GPU.", "custom"
    at.run()
    monkeypatch.setattr(lfviz.model.runner.Runner, "run", oom)
    at.switch_page("pages/attention.py").run()
    assert not at.exception and any("ran out of memory" in e.value for e in at.error)
    monkeypatch.setattr(lfviz.model.runner.Runner, "run", real_run)
    at.session_state["window"] = "16"
    at.run()
    assert not at.exception and not at.error


def test_a_model_that_fails_to_load_is_not_cached(monkeypatch, tmp_path):
    from lfviz.app import cache as app_cache
    from lfviz.app import serving

    calls = []
    real = serving.load_runner

    def flaky(model, **kw):
        calls.append(model)
        if len(calls) == 1:
            raise ValueError("half-way failure")
        return real("embedded")

    monkeypatch.setattr(serving, "load_runner", flaky)
    key = str(tmp_path / "some-model")
    with __import__("pytest").raises(ValueError):
        app_cache.get_runner(key)
    assert app_cache.get_runner(key).model_id == "embedded"  # tried again, not a cached failure
    assert calls == [str(tmp_path.resolve() / "some-model")] * 2
