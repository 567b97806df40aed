"""The Document page's widget groups: model picker, sample picker and upload, the text with its queries and
question, the token count, exporting a run and opening an export."""
from __future__ import annotations

import streamlit as st

from ..model.result import load_result
from ..samples import list_samples
from ..textspec import config_to_text
from . import cache, state


def decode_text_upload(data: bytes, limit: int = state.MAX_UPLOAD_BYTES) -> str:
    """The text of an uploaded file; ValueError saying what to fix (too large, not UTF-8)."""
    if len(data) > limit:
        raise ValueError(f"The file is {len(data) / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB. Upload a "
                         "shorter text.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text. Save it as UTF-8 (.txt) and upload again.") from None


def export_differences(info: dict, model: str, current: dict[str, str]) -> list[str]:
    """How an opened export (`info`: model, config texts) differs from the current model and configuration."""
    out = [f"model {info['model']} (current: {model})"] if info["model"] != model else []
    return out + [f"{k} {info['config'][k]!r} (current: {current[k]!r})" for k in current
                  if info["config"][k] != current[k]]


def _model_chosen() -> None:
    ss = st.session_state
    if ss["model_choice"] != "custom":
        ss["model"] = ss["model_choice"]  # in a callback: the sidebar and the link show it in this very run


def model_picker():
    """The model selectbox (embedded models, or a Hub id / folder loaded on request); the current runner or None."""
    ss = st.session_state
    st.subheader("Model")
    choices = list(state.MODEL_CHOICES) + ["custom"]
    current = ss["model"] if ss["model"] in state.MODEL_CHOICES else "custom"
    if ss.get("model_choice") != current and not (ss.get("model_choice") == "custom" and current == "custom"):
        ss["model_choice"] = current  # a link or an export changed the model
    choice = st.selectbox("Model", choices, key="model_choice", on_change=_model_chosen,
                          format_func=lambda k: state.MODEL_CHOICES.get(k, "Hub id or local folder..."))
    if choice == "custom":
        path = st.text_input("Hub id or local folder", value="" if current != "custom" else ss["model"],
                             key="model_path", placeholder="allenai/longformer-base-4096 or /path/to/folder")
        if st.button("Load", key="model_load") and path.strip():
            try:
                cache.get_runner(path.strip())
            except ValueError as e:
                st.error(f"{e}")
            else:
                state.request(model=path.strip())  # rerun: the sidebar, drawn before, shows the new model
    runner = cache.current_runner()
    if runner is not None:
        st.info(runner.description)
    return runner


def sample_picker() -> None:
    """Sample documents and the text upload; a refused upload keeps the current document."""
    ss = st.session_state
    st.subheader("Sample")
    samples = {s.id: s for s in list_samples()}
    ids = list(samples) + ["custom"]
    choice = ss["sample"] if ss["sample"] in ids else "custom"
    if ss.get("sample_choice") != choice:
        ss["sample_choice"] = choice  # a link, an export or an edit changed the sample
    st.selectbox("Sample document", ids, key="sample_choice",
                 format_func=lambda i: samples[i].title if i in samples else "My own text",
                 on_change=lambda: state.use_sample(ss["sample_choice"]) if ss["sample_choice"] != "custom"
                 else ss.update(sample="custom"))
    if ss["sample"] in samples and samples[ss["sample"]].answer:
        st.caption(f"Stored answer to the sample's question: **{samples[ss['sample']].answer}**")
    upload = st.file_uploader("Upload a .txt file", type=["txt", "md"], key="upload",
                              max_upload_size=state.MAX_UPLOAD_BYTES // 1_000_000)
    if upload is not None and ss.get("_uploaded") != upload.file_id:
        ss["_uploaded"] = upload.file_id
        try:
            ss.update(document=decode_text_upload(upload.getvalue()), sample="custom")
        except ValueError as e:
            st.error(f"{e} Your current document is kept.")


def _queries_edited() -> None:
    ss = st.session_state
    ss["queries"] = [q.strip() for q in ss["queries_text"].splitlines() if q.strip()]


def document_editor() -> None:
    """The document text, the queries to rank it against, and the question asked of it; each widget shows the
    session's value (a sample brings its own queries and question) and writes it back when edited."""
    ss = st.session_state
    st.subheader("Document")
    if ss.get("doc_text") != ss["document"]:
        ss["doc_text"] = ss["document"]
    st.text_area("Text", key="doc_text", height=320, label_visibility="collapsed",
                 on_change=lambda: ss.update(document=ss["doc_text"], sample="custom"))
    if [q.strip() for q in ss.get("queries_text", "").splitlines() if q.strip()] != ss.get("queries", []):
        ss["queries_text"] = "\n".join(ss.get("queries", []))
    st.text_area("Queries or labels to rank the document against (one per line)", key="queries_text", height=100,
                 on_change=_queries_edited)
    if (ss.get("question_text") or "").strip() != (ss.get("question") or ""):
        ss["question_text"] = ss.get("question") or ""
    st.text_input("Question asked of the document (QA models answer it; its tokens can be made global in the lab)",
                  key="question_text", on_change=lambda: ss.update(question=ss["question_text"].strip() or None))
    if ss["sample"] == "custom":
        st.caption("Links to this view carry the settings, queries and question but not your own text (only "
                   "samples travel in links): to share the text, use 'Export this run' below.")


def token_summary(runner) -> None:
    """Token count, model positions and size; the truncation warning."""
    ss = st.session_state
    if not ss["document"].strip():
        st.warning("The document is empty: pick a sample, paste text, or upload a file.")
        return
    tok = runner.tokenize(ss["document"], ss.get("question"))
    c1, c2, c3 = st.columns(3)
    c1.metric("Tokens", f"{len(tok.input_ids):,}")
    c2.metric("Model positions", f"{runner.max_tokens:,}")
    c3.metric("Layers x heads", f"{runner.num_layers} x {runner.num_heads}")
    for w in tok.warnings:
        st.warning(w)
    if len(tok.input_ids) >= runner.max_tokens and ss["model"] == "embedded":
        st.info("Pick 'Embedded MiniLM, converted (16,384 tokens)' above to read up to 16,384 tokens.")


def export_panel(runner) -> None:
    """Prepare and download the current run as .safetensors (chosen layers)."""
    ss = st.session_state
    with st.expander("Export this run (.safetensors: attention, hidden states, predictions, configuration)"):
        layers = st.multiselect("Layers to include", list(range(runner.num_layers)), default=[ss["layer"]],
                                key="doc_export_layers")
        st.button("Prepare the export", key="doc_export_prepare",
                  on_click=lambda: ss.update(_doc_export_requested=True))
        if ss.pop("_doc_export_requested", False):
            res = cache.run_document()
            if res is not None:
                ss["_doc_export"] = res.to_bytes(layers=layers)
                ss["_doc_export_layers"] = list(layers)
        if ss.get("_doc_export"):
            size = len(ss["_doc_export"]) / 1e6
            st.download_button(f"Download ({size:.1f} MB, layers {ss['_doc_export_layers']})", ss["_doc_export"],
                               "lfviz_run.safetensors", "application/octet-stream", key="doc_export_download")
            st.caption("Open it again in Python with `lfviz.load_result('lfviz_run.safetensors')`.")


def _use_export():
    ss = st.session_state
    info = ss["_import"]
    ss.update(document=info["text"], sample="custom", window=info["config"]["window"],
              dilation=info["config"]["dilation"], **{"global": info["config"]["global"]})
    if info["model"] in state.MODEL_CHOICES:
        ss["model"] = info["model"]


def import_panel() -> None:
    """Open an lfviz export: what it holds, how it differs from the current view, and adopting it."""
    ss = st.session_state
    with st.expander("Open an export (.safetensors made by lfviz)"):
        exported = st.file_uploader("lfviz export", type=["safetensors"], key="doc_import",
                                    max_upload_size=state.MAX_EXPORT_MB)
        if exported is not None and ss.get("_imported") != exported.file_id:
            ss["_imported"] = exported.file_id
            ss.pop("_import", None)
            try:
                res = load_result(exported.getvalue())
            except ValueError as e:
                st.error(f"{e}. Your current document and settings are kept.")
            else:
                ss["_import"] = {"model": res.model_id, "config": config_to_text(res.config), "text": res.text,
                                 "tokens": res.n, "layers": res.capture.captured_layers}
        info = ss.get("_import")
        if not info:
            return
        st.write(f"Made with **{info['model']}** on {info['tokens']:,} tokens; layers captured "
                 f"{info['layers']}; configuration {info['config']}.")
        differences = export_differences(info, ss["model"], {k: ss[k] for k in ("window", "dilation", "global")})
        if differences:
            st.warning("This export differs from the current view: " + "; ".join(differences) + ".")
        if info["model"] not in state.MODEL_CHOICES and info["model"] != ss["model"]:
            st.caption(f"{info['model']} cannot be opened from here: load it above to reproduce the export "
                       "exactly; its document and configuration still work with the current model.")
        if info["text"] is None:
            st.info("This export was made from token ids, not text: there is no document to reopen.")
        else:
            st.button("Use its document and configuration", key="doc_import_use", on_click=_use_export)
