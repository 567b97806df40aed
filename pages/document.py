"""Document (home): model, document, token count, configuration, and what Longformer attention is."""
import streamlit as st

from lfviz import app_state
from lfviz.samples import list_samples
from lfviz.result import load_result
from lfviz.textspec import config_to_text

app_state.ensure_app_routing()
ss = st.session_state
st.title("lfviz: see Longformer attention")
st.markdown(
    "**Longformer** (Beltagy, Peters & Cohan, 2020) replaces full self-attention with a **sliding window**: "
    "each token attends to `W/2` neighbours on each side (optionally **dilated**, every d-th neighbour, to "
    "reach d times as far with the same cost), and a few **global** tokens (the first token, a question) "
    "attend to everything while everything attends to them. Cost grows linearly with length, so documents "
    "of 4,096-16,384 tokens fit where BERT stops at 512. Pick a document, set window, dilation and global "
    "tokens in the sidebar, and open the other pages to see what the model attends to and how it changes "
    "the predictions."
)

left, right = st.columns([2, 1])
with right:
    st.subheader("Model")
    choices = list(app_state.MODEL_CHOICES) + ["custom"]
    current = ss["model"] if ss["model"] in app_state.MODEL_CHOICES else "custom"
    choice = st.selectbox("Model", choices, index=choices.index(current), key="model_choice",
                          format_func=lambda k: app_state.MODEL_CHOICES.get(k, "Hub id or local folder..."))
    if choice == "custom":
        path = st.text_input("Hub id or local folder", value="" if current != "custom" else ss["model"],
                             key="model_path", placeholder="allenai/longformer-base-4096 or /path/to/folder")
        if st.button("Load", key="model_load") and path.strip():
            previous = ss["model"]
            try:
                app_state.get_runner(path.strip())
                ss["model"] = path.strip()
            except ValueError as e:
                ss["model"] = previous
                st.error(f"{e}")
    elif choice != ss["model"]:
        ss["model"] = choice
    runner = app_state.current_runner()
    if runner is not None:
        st.info(runner.description)

    st.subheader("Sample")
    samples = {s.id: s for s in list_samples()}
    ids = list(samples) + ["custom"]
    st.selectbox("Sample document", ids, index=ids.index(ss["sample"]) if ss["sample"] in ids else len(ids) - 1,
                 key="sample_choice", format_func=lambda i: samples[i].title if i in samples else "My own text",
                 on_change=lambda: app_state.use_sample(ss["sample_choice"]) if ss["sample_choice"] != "custom"
                 else ss.update(sample="custom"))
    upload = st.file_uploader("Upload a .txt file", type=["txt", "md"], key="upload",
                              max_upload_size=app_state.MAX_UPLOAD_BYTES // 1_000_000)
    if upload is not None and ss.get("_uploaded") != upload.file_id:
        ss["_uploaded"] = upload.file_id
        data = upload.getvalue()
        if len(data) > app_state.MAX_UPLOAD_BYTES:
            st.error(f"The file is {len(data) / 1e6:.1f} MB; the limit is {app_state.MAX_UPLOAD_BYTES / 1e6:.0f} MB. "
                     "Upload a shorter text. Your current document is kept.")
        else:
            try:
                ss.update(document=data.decode("utf-8"), sample="custom")
            except UnicodeDecodeError:
                st.error("The file is not UTF-8 text. Save it as UTF-8 (.txt) and upload again. "
                         "Your current document is kept.")

with left:
    st.subheader("Document")

    def _edited():
        ss.update(document=ss["doc_text"], sample="custom")

    if ss.get("doc_text") != ss["document"]:
        ss["doc_text"] = ss["document"]
    st.text_area("Text", key="doc_text", height=320, on_change=_edited, label_visibility="collapsed")
    queries = st.text_area("Queries or labels to rank the document against (one per line)",
                           value="\n".join(ss.get("queries", [])), key="queries_text", height=100)
    ss["queries"] = [q.strip() for q in queries.splitlines() if q.strip()]
    question = st.text_input("Question asked of the document (QA models answer it; its tokens can be made "
                             "global in the lab)", value=ss.get("question") or "", key="question_text")
    ss["question"] = question.strip() or None

if runner is not None:
    if not ss["document"].strip():
        st.warning("The document is empty: pick a sample, paste text, or upload a file.")
    else:
        tok = runner.tokenize(ss["document"], ss.get("question"))
        c1, c2, c3 = st.columns(3)
        c1.metric("Tokens", f"{len(tok.input_ids):,}")
        c2.metric("Model positions", f"{runner.max_tokens:,}")
        c3.metric("Layers x heads", f"{runner.num_layers} x {runner.num_heads}")
        for w in tok.warnings:
            st.warning(f"Truncated: {w}")
cfg = app_state.current_config()
if cfg is not None:
    st.subheader("Current configuration")
    st.json({**config_to_text(cfg), "layer": ss["layer"], "head": ss["head"]}, expanded=True)

# -- export ----------------------------------------------------------------------------------------------------------
if runner is not None and cfg is not None and ss["document"].strip():
    with st.expander("Export this run (.safetensors: attention, hidden states, predictions, configuration)"):
        layers = st.multiselect("Layers to include", list(range(runner.num_layers)), default=[ss["layer"]],
                                key="doc_export_layers")
        st.button("Prepare the export", key="doc_export_prepare",
                  on_click=lambda: ss.update(_doc_export_requested=True))
        if ss.pop("_doc_export_requested", False):
            res = app_state.run_document()
            if res is not None:
                ss["_doc_export"] = res.to_bytes(layers=layers)
                ss["_doc_export_layers"] = list(layers)
        if ss.get("_doc_export"):
            size = len(ss["_doc_export"]) / 1e6
            st.download_button(f"Download ({size:.1f} MB, layers {ss['_doc_export_layers']})", ss["_doc_export"],
                               "lfviz_run.safetensors", "application/octet-stream", key="doc_export_download")
            st.caption("Open it again in Python with `lfviz.load_result('lfviz_run.safetensors')`.")


# -- opening an export -------------------------------------------------------------------------------------------------
def _use_export():
    info = ss["_import"]
    ss.update(document=info["text"], sample="custom", window=info["config"]["window"],
              dilation=info["config"]["dilation"], **{"global": info["config"]["global"]})
    if info["model"] in app_state.MODEL_CHOICES:
        ss["model"] = info["model"]


with st.expander("Open an export (.safetensors made by lfviz)"):
    exported = st.file_uploader("lfviz export", type=["safetensors"], key="doc_import",
                                max_upload_size=app_state.MAX_EXPORT_MB)
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
    if info:
        st.write(f"Made with **{info['model']}** on {info['tokens']:,} tokens; layers captured "
                 f"{info['layers']}; configuration {info['config']}.")
        differences = []
        if info["model"] != ss["model"]:
            differences.append(f"model {info['model']} (current: {ss['model']})")
        current = {k: ss[k] for k in ("window", "dilation", "global")}
        differences += [f"{k} {info['config'][k]!r} (current: {current[k]!r})"
                        for k in current if info["config"][k] != current[k]]
        if differences:
            st.warning("This export differs from the current view: " + "; ".join(differences) + ".")
        if info["model"] not in app_state.MODEL_CHOICES and info["model"] != ss["model"]:
            st.caption(f"{info['model']} cannot be opened from here: load it above to reproduce the export exactly; "
                       "its document and configuration still work with the current model.")
        if info["text"] is None:
            st.info("This export was made from token ids, not text: there is no document to reopen.")
        else:
            st.button("Use its document and configuration", key="doc_import_use", on_click=_use_export)
