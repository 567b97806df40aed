"""The Document page's widget groups: model picker, sample picker and upload, the text with its queries and
question, the token count, exporting a run and opening an export."""
from __future__ import annotations

import streamlit as st
import torch

from ..figures.pattern import pattern_heatmap
from ..model.result import load_result
from ..samples import list_samples
from ..textspec import config_from_text, config_to_text
from . import cache, pattern, serving, state


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
    """How an opened export (`info`: model, config texts) differs from the current model and configuration; fields
    are compared by what they mean ('0, 20' and '0,20' are the same global tokens), and shown as typed."""
    out = [f"model {info['model']} (current: {model})"] if info["model"] != model else []
    return out + [f"{k} {info['config'][k]!r} (current: {current[k]!r})" for k in current
                  if _meaning(k, info["config"][k]) != _meaning(k, current[k])]


def _meaning(field: str, text: str):
    """A configuration field's value for comparison; the text itself when it does not parse."""
    fields = {"window": "2", "dilation": "1", "global": ""}
    fields[field] = text
    try:
        return config_from_text(fields["window"], fields["dilation"], fields["global"]).to_dict()
    except ValueError:
        return " ".join(str(text).split())


def _model_chosen() -> None:
    ss = st.session_state
    ss["_custom_model"] = ss["model_choice"] == "custom"  # a plain key: the field stays open on the next runs
    if ss["model_choice"] != "custom":
        ss["model"] = ss["model_choice"]  # in a callback: the sidebar and the link show it in this very run


def _custom_label() -> str:
    return "Hub id or folder on this machine" if serving.paths_allowed() else "Hub id (from the server's cache)"


def _load_custom() -> None:
    """Load the model named in the field (a Hub id, or a folder where the owner allows paths) and make it current;
    the error, if any, waits in "_model_error" for the page to show. The current model is kept either way."""
    ss = st.session_state
    ss.pop("_model_error", None)
    try:
        key = serving.custom_model_key(ss.get("model_path", ""))
        cache.get_runner(key)
    except ValueError as e:
        ss["_model_error"] = f"{e} The current model ({ss['model']}) is kept."
    else:
        ss["model"] = key


def model_picker():
    """The model selectbox (embedded models, or a Hub id / folder loaded on request); the current runner or None."""
    ss = st.session_state
    st.subheader("Model")
    choices = list(state.MODEL_CHOICES) + ["custom"]
    current = "custom" if ss.get("_custom_model") or ss["model"] not in state.MODEL_CHOICES else ss["model"]
    if ss.get("model_choice") != current:
        ss["model_choice"] = current  # a link or an export changed the model
    choice = st.selectbox("Model", choices, key="model_choice", on_change=_model_chosen,
                          format_func=lambda k: state.MODEL_CHOICES.get(k, _custom_label() + "..."))
    if choice == "custom":
        if ss.get("model_path") is None and ss["model"] not in state.MODEL_CHOICES:
            ss["model_path"] = ss["model"]
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        c1.text_input(_custom_label(), key="model_path",
                      placeholder="allenai/longformer-base-4096" + (" or /path/to/folder"
                                                                    if serving.paths_allowed() else ""))
        c2.button("Load", key="model_load", on_click=_load_custom, disabled=not ss.get("model_path", "").strip())
        st.caption("Longformer, BERT (converted) and causal LM checkpoints; safetensors only, no remote code. "
                   + ("Hub models come from the server's cache: nothing is downloaded."
                      if not serving.hub_downloads_allowed() else "Hub models are downloaded when missing.")
                   + ("" if serving.paths_allowed() else " Folders on the server are off on this shared app."))
    if ss.get("_model_error"):
        st.error(ss["_model_error"])
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
    st.text_area("Queries or labels to rank the document against (one per line)", key="queries_text", height=125,
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


def configuration_words(cfg) -> None:
    """The configuration in force, in words."""
    ss = st.session_state
    st.subheader("Current configuration")
    st.markdown(f"{describe_config(config_to_text(cfg))}; showing layer {ss['layer']}, head {ss['head']}. "
                "Change it in the sidebar; the Pattern page shows it in full.")


def pattern_thumbnail(runner, cfg) -> None:
    """A small picture of the pattern the configuration gives this document (the sidebar's layer and head)."""
    ss = st.session_state
    tokens = cache.document_tokens()
    if not tokens:
        return
    n = len(tokens)
    spec = cfg.resolve(runner.num_layers, runner.num_heads)[int(ss["layer"])]
    (z, edges), pairs = pattern.longformer_cells(spec, n, cfg.check_globals(n), int(ss["head"]), 0, n, 64,
                                                 cache.is_causal(runner))
    st.plotly_chart(pattern_heatmap(z, edges, f"This configuration on this text: {pairs / n**2:.1%} of pairs",
                                    ticks=4, height=260, global_tokens=cfg.global_tokens),
                    key="doc_pattern", width="stretch")


def export_panel() -> None:
    """Download the current run as .safetensors: its size shown before preparing, fewer layers or no hidden
    states to shrink it, and never more than the app itself can open again (MAX_EXPORT_MB)."""
    ss = st.session_state
    box = st.expander("Export this run (.safetensors: attention, hidden states, predictions, configuration)",
                      key="doc_export_box", on_change="rerun")
    with box:
        if not box.open:
            return  # lazy: the run (and its size) is needed only once the box is open
        res = cache.run_document()
        if res is None:
            return
        c1, c2 = st.columns([3, 2])
        layers = c1.multiselect("Layers to include", res.capture.captured_layers, default=[ss["layer"]],
                                key="doc_export_layers")
        hidden = c2.checkbox("Include hidden states (fp16)", value=False, key="doc_export_hidden")
        size = res.export_size(layers, hidden_states=hidden, dtype=torch.float16)
        per_layer = res.export_size(res.capture.captured_layers[:1], False) - res.export_size([], False)
        too_big = size > state.MAX_EXPORT_MB * 1e6
        st.caption(f"About {size / 1e6:.1f} MB ({per_layer / 1e6:.1f} MB per layer of attention, fp16). The app "
                   f"opens exports up to {state.MAX_EXPORT_MB} MB.")
        if too_big:
            st.warning(f"{size / 1e6:.0f} MB is more than the {state.MAX_EXPORT_MB} MB the app can open again: "
                       "include fewer layers, or leave out the hidden states.")
        st.button("Prepare the export", key="doc_export_prepare", disabled=too_big or not layers,
                  on_click=lambda: ss.update(_doc_export_requested=True))
        if ss.pop("_doc_export_requested", False) and not too_big:
            ss["_doc_export"] = res.to_bytes(layers=layers, hidden_states=hidden, dtype=torch.float16)
            ss["_doc_export_layers"] = list(layers)
        if ss.get("_doc_export"):
            st.download_button(f"Download ({len(ss['_doc_export']) / 1e6:.1f} MB, layers {ss['_doc_export_layers']})",
                               ss["_doc_export"], "lfviz_run.safetensors", "application/octet-stream",
                               key="doc_export_download")
            st.caption("Open it again here ('Open an export' below) or in Python with "
                       "`lfviz.load_result('lfviz_run.safetensors')`.")


def _use_export():
    """Adopt an opened export: its document, configuration, queries, question, a layer it holds, and its model
    when the app can open it; pages then show the saved run as it was saved (cache.run_document)."""
    ss = st.session_state
    res = ss["_import_run"]
    fields = config_to_text(res.config)
    ss.update(document=res.text, sample="custom", window=fields["window"], dilation=fields["dilation"],
              queries=list(res.queries), question=res.question, **{"global": fields["global"]})
    if res.capture.captured_layers and ss["layer"] not in res.capture.captured_layers:
        ss["layer"] = res.capture.captured_layers[0]
    if res.model_id in state.MODEL_CHOICES:
        ss["model"] = res.model_id
    ss.pop("_global_anchor", None)  # the export's positions are for its own text: nothing to carry over
    cache.show_saved_run(res)


def describe_config(fields: dict[str, str]) -> str:
    """The configuration in words: "window 512 (two-sided), dilation 1, global tokens 0, 5"."""
    return (f"window {fields['window']} (two-sided), dilation {fields['dilation']}, global tokens "
            f"{fields['global'] or 'none'}")


def import_panel() -> None:
    """Open an lfviz export: what it holds, how it differs from the current view, and showing it as saved."""
    ss = st.session_state
    with st.expander("Open an export (.safetensors made by lfviz)"):
        exported = st.file_uploader("lfviz export", type=["safetensors"], key="doc_import",
                                    max_upload_size=state.MAX_EXPORT_MB)
        if exported is not None and ss.get("_imported") != exported.file_id:
            ss["_imported"] = exported.file_id
            ss.pop("_import_run", None)
            try:
                ss["_import_run"] = load_result(exported.getvalue(), name=exported.name)  # in memory
            except ValueError as e:
                st.error(f"{e}. Your current document and settings are kept.")
        res = ss.get("_import_run")
        if res is None:
            return
        fields = config_to_text(res.config)
        # st.text, not markdown: every string here comes from the file, and markdown could fetch a URL
        st.text(f"Made with {res.model_id} on {res.n:,} tokens: {describe_config(fields)}; layers captured "
                f"{', '.join(map(str, res.capture.captured_layers)) or 'none'}"
                + (f"; queries: {', '.join(res.queries)}" if res.queries else "")
                + (f"; question: {res.question}" if res.question else "") + ".")
        differences = export_differences({"model": res.model_id, "config": fields}, ss["model"],
                                         {k: ss[k] for k in ("window", "dilation", "global")})
        if differences:
            st.warning("This export differs from the current view (listed below).")
            st.text("\n".join(differences))
        if res.model_id not in state.MODEL_CHOICES and res.model_id != ss["model"]:
            st.caption("Its model cannot be opened from here: load it above to reproduce the export exactly; its "
                       "document and configuration still work with the current model.")
        if res.text is None:
            st.info("This export was made from token ids, not text: there is no document to reopen.")
        else:
            st.button("Show this saved run", key="doc_import_use", on_click=_use_export,
                      help="Adopts its document, configuration, queries and question; the pages show the saved "
                           "attention and predictions without running the model.")
