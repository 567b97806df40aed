"""A shared instance (`make run ADDRESS=0.0.0.0`) reads nothing the visitor did not give it. Each attack found by
the new user's walk is replayed and shown refused: crafted results metadata, path probes, `..` and symlinks, a Hub
id while offline, uploads left on disk, an export's bad positions and temp paths. "Shared" is an app not bound to
loopback (serving.bound_to_loopback patched to False, as `--server.address 0.0.0.0` makes it)."""
import io
import json
import os
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from apptools import new_app

from lfviz.app import serving
from lfviz.config import AttentionConfig
from lfviz.study.job import META_KEY, run_study

SECRET = "The launch code is 0000-SECRET-0000. "


@pytest.fixture
def shared(monkeypatch):
    """The app as shared on a network: not bound to loopback, no opt-in."""
    monkeypatch.delenv(serving.PATHS_ENV, raising=False)
    monkeypatch.delenv(serving.CORPUS_ENV, raising=False)
    monkeypatch.delenv(serving.HUB_ENV, raising=False)
    monkeypatch.setattr(serving, "bound_to_loopback", lambda: False)


def _study(tmp_path: Path) -> Path:
    """Real results of a study on a public corpus (one document, id 'doc')."""
    corpus = tmp_path / "public"
    corpus.mkdir()
    (corpus / "doc.txt").write_text("The board approved the budget. " * 8)
    out = tmp_path / "r.parquet"
    run_study(corpus, out, config=AttentionConfig(window=16), strategies="none")
    return out


def _crafted(results: Path, corpus: Path) -> bytes:
    """The same results whose metadata names another corpus (a folder holding the attacker's target, id 'doc')."""
    table = pq.read_table(results)
    meta = json.loads(table.schema.metadata[META_KEY.encode() if isinstance(META_KEY, str) else META_KEY])
    meta["corpus"] = str(corpus)
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), buf)
    return buf.getvalue()


def _study_page():
    at = new_app(300)
    at.session_state["window"] = "16"
    at.run()
    at.switch_page("pages/study.py").run()
    assert not at.exception
    return at


def _upload_and_open(at, data: bytes, name="results.parquet"):
    at.file_uploader(key="study_upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.selectbox(key="study_doc").set_value("doc")
    at.button(key="study_open").click().run()
    assert not at.exception


@pytest.mark.parametrize("where", ["shared", "local"])
def test_crafted_results_metadata_never_reads_a_server_folder(tmp_path, monkeypatch, where):
    """The attack: results whose metadata points at a folder with secret .txt files; "Open it in the lab" read
    them into the Document page. Now an upload's corpus path is never read, shared or local."""
    if where == "shared":
        monkeypatch.setattr(serving, "bound_to_loopback", lambda: False)
    monkeypatch.delenv(serving.CORPUS_ENV, raising=False)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "doc.txt").write_text(SECRET)
    at = _study_page()
    before = at.session_state["document"]
    _upload_and_open(at, _crafted(_study(tmp_path), secret))
    assert at.session_state["document"] == before and SECRET not in json.dumps(
        {k: str(at.session_state[k]) for k in ("document", "question")})
    assert any("cannot be opened here" in e.value for e in at.error)
    assert not any(SECRET.strip() in str(getattr(el, "value", "")) for el in at.main)


def test_uploaded_results_open_documents_of_the_servers_own_corpus(tmp_path, shared, monkeypatch):
    results = _study(tmp_path)
    monkeypatch.setenv(serving.CORPUS_ENV, str(tmp_path / "public"))  # the owner's corpus
    at = _study_page()
    _upload_and_open(at, results.read_bytes())
    assert at.session_state["document"].startswith("The board approved")
    assert at.session_state["queries"] == [] and at.session_state["sample"] == "custom"


def test_uploads_are_never_written_to_the_servers_disk(tmp_path, shared, monkeypatch):
    results = _study(tmp_path)
    written = []
    real_open = open

    def watch(file, mode="r", *a, **kw):  # every file the app opens for writing while it handles the upload
        if any(m in mode for m in "wax"):
            written.append(str(file))
        return real_open(file, mode, *a, **kw)

    at = _study_page()
    monkeypatch.setattr("builtins.open", watch)
    at.file_uploader(key="study_upload").set_value(("r.parquet", results.read_bytes(), "application/x")).run()
    monkeypatch.setattr("builtins.open", real_open)
    assert not at.exception and not at.error
    assert not [w for w in written if w.endswith(".parquet")], written
    assert not list((Path(tempfile.gettempdir()) / "lfviz-study").glob("upload-*"))


def test_a_shared_app_has_no_path_field_and_ignores_a_planted_path(tmp_path, shared):
    results = _study(tmp_path)
    at = new_app(300)
    at.session_state["study_path"] = str(results)  # as if a widget value were forged
    at.run()
    at.switch_page("pages/study.py").run()
    assert not at.exception
    assert not [t for t in at.text_input if t.key == "study_path"]
    assert not at.dataframe and any("off on this shared app" in c.value for c in at.caption)


def test_path_probes_read_the_same_whether_or_not_the_path_exists(tmp_path, monkeypatch):
    """With the owner's opt-in LFVIZ_PATHS=<allowed>, every path outside it - missing, existing, `..`, a symlink
    out - gets the same message (only the typed text differs), and a path inside it opens."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    results = _study(allowed)
    outside = tmp_path / "outside.parquet"
    outside.write_bytes(results.read_bytes())
    (allowed / "link.parquet").symlink_to(outside)
    monkeypatch.setattr(serving, "bound_to_loopback", lambda: False)
    monkeypatch.setenv(serving.PATHS_ENV, str(allowed))
    at = _study_page()
    messages = {}
    for probe in (str(outside), str(tmp_path / "missing.parquet"), "/etc/passwd", "/root/.bashrc", "/etc",
                  str(allowed / ".." / "outside.parquet"), str(allowed / "link.parquet"), "~/.bashrc",
                  str(allowed / "missing.parquet"), str(allowed)):
        at.text_input(key="study_path").set_value(probe).run()
        assert not at.exception and len(at.error) == 1 and not at.dataframe, probe
        messages[probe] = at.error[0].value.replace(repr(probe), "PATH")
    outside_msgs = {m for p, m in messages.items() if not p.startswith(str(allowed)) or ".." in p or "link" in p}
    assert len(outside_msgs) == 1, outside_msgs
    inside_msgs = {messages[str(allowed / "missing.parquet")], messages[str(allowed)]}
    assert len(inside_msgs) == 1  # a missing file and a folder read the same inside the allowed folder too
    at.text_input(key="study_path").set_value(str(results)).run()
    assert not at.exception and not at.error and at.dataframe


def test_server_path_rules():
    assert serving._is_loopback("127.0.0.1") and serving._is_loopback("localhost") and serving._is_loopback("::1")
    assert not serving._is_loopback("0.0.0.0") and not serving._is_loopback("") and not serving._is_loopback(None)
    assert not serving._is_loopback("192.168.1.5") and not serving._is_loopback("myhost")


def test_the_default_config_binds_to_loopback_so_paths_are_local_only(monkeypatch):
    monkeypatch.delenv(serving.PATHS_ENV, raising=False)
    import streamlit as st

    assert st.get_option("server.address") == "127.0.0.1" and serving.paths_allowed()
    monkeypatch.setenv(serving.PATHS_ENV, "none")
    assert not serving.paths_allowed()


def _custom_model(at, text):
    at.selectbox(key="model_choice").set_value("custom").run()
    assert [t for t in at.text_input if t.key == "model_path"], "the custom model field snapped back"
    at.text_input(key="model_path").set_value(text).run()
    at.button(key="model_load").click().run()
    assert not at.exception
    return at


@pytest.mark.parametrize("text", ["/etc", "/nonexistent/folder", "../../etc", "~", "./lfviz", "/root/.cache"])
def test_a_shared_app_loads_no_model_folder_and_does_not_tell_which_exist(text, shared):
    at = new_app(300)
    at.run()
    _custom_model(at, text)
    assert at.session_state["model"] == "embedded"
    assert [e.value for e in at.error] == [f"{serving.PATHS_OFF} The current model (embedded) is kept."]


def test_a_hub_id_never_downloads_unless_the_owner_allows_it(shared, monkeypatch):
    import huggingface_hub

    asked = []

    def fake_download(repo_id, **kw):
        asked.append(kw.get("local_files_only"))
        from huggingface_hub.errors import LocalEntryNotFoundError

        raise LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # even with the Hub reachable, a visitor's id stays in the cache
    at = new_app(300)
    at.run()
    _custom_model(at, "someone/some-model")
    assert asked == [True] and at.session_state["model"] == "embedded"
    assert any("not available" in e.value for e in at.error)
    monkeypatch.setenv(serving.HUB_ENV, "1")  # the owner's opt-in (make run ONLINE=1)
    at.button(key="model_load").click().run()
    assert asked == [True, False]


@pytest.mark.parametrize("kind", ["longformer", "bert", "causal"])
def test_the_custom_model_field_loads_a_local_folder(tmp_path, bert_tokenizer, tiny_gemma3, kind):
    """Local use (loopback): a Longformer, BERT or causal LM folder typed in the field loads and becomes the model
    (the field used to snap back to Embedded)."""
    from conftest import save_tiny
    from transformers import BertConfig, BertModel, LongformerModel

    folder = tmp_path / f"tiny-{kind}"
    if kind == "longformer":
        save_tiny(LongformerModel, folder, bert_tokenizer)
    elif kind == "bert":
        BertModel(BertConfig(vocab_size=bert_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=37)).save_pretrained(folder)
        bert_tokenizer.save_pretrained(folder)
    else:
        tiny_gemma3.model.save_pretrained(folder, safe_serialization=True)
        bert_tokenizer.save_pretrained(folder)
    at = new_app(300)
    at.run()
    _custom_model(at, str(folder))
    assert not at.error, [e.value for e in at.error]
    assert at.session_state["model"] == str(folder.resolve())
    at.run()  # stays chosen on the next run
    assert at.selectbox(key="model_choice").value == "custom" and not at.exception
    if kind == "causal":
        assert at.session_state["window"] == "native"  # trained with a sliding window: starts with its own pattern


def test_an_export_with_a_global_token_past_its_text_is_refused_by_name(embedded, tmp_path):
    """The importer adopted global token 999999 (then every page showed a sidebar error), and its errors named a
    server temp path. Now the upload's own name is in the message and nothing is adopted."""
    from safetensors.torch import load, save

    res = embedded.run("The board approved the budget.", config=AttentionConfig(window=8, global_tokens=(0,)))
    data = res.to_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    meta = header["__metadata__"]
    meta["config"] = json.dumps({**json.loads(meta["config"]), "global_tokens": [0, 999999]})
    forged = save(load(data), metadata=meta)
    at = new_app(300)
    at.run()
    before = {k: at.session_state[k] for k in ("document", "global")}
    at.file_uploader(key="doc_import").set_value(("my-run.safetensors", forged, "application/octet-stream")).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("my-run.safetensors" in e and "999999" in e for e in errors), errors
    assert not any(tempfile.gettempdir() in e for e in errors)
    assert {k: at.session_state[k] for k in before} == before and "_import_run" not in at.session_state
    at.file_uploader(key="doc_import").set_value(("junk.safetensors", os.urandom(64), "application/x")).run()
    assert any("junk.safetensors is not a readable" in e.value for e in at.error)
