"""Document (home): model, document, token count, configuration, and what Longformer attention is."""
import streamlit as st

from lfviz.app import cache, document, routing

routing.ensure_app_routing()
ss = st.session_state
st.title("lfviz: see Longformer attention")
runner, cfg = cache.current_runner(), cache.current_config()
about, picture = st.columns([3, 2])
with about:
    st.markdown(
        "**Longformer** (Beltagy, Peters & Cohan, 2020) replaces full self-attention with a **sliding window**: "
        "each token attends to `W/2` neighbours on each side (optionally **dilated**, every d-th neighbour, to "
        "reach d times as far with the same cost), and a few **global** tokens (the first token, a question) "
        "attend to everything while everything attends to them. Cost grows linearly with length, so documents "
        "of 4,096-16,384 tokens fit where BERT stops at 512. Pick a document, set window, dilation and global "
        "tokens in the sidebar, and open the other pages to see what the model attends to and how it changes "
        "the predictions."
    )
if runner is not None and cfg is not None:
    with picture:
        document.pattern_thumbnail(runner, cfg)

left, right = st.columns([5, 3])
with right:
    runner = document.model_picker()
    document.sample_picker()
with left:
    document.document_editor()
    if runner is not None and cache.is_causal(runner):
        st.caption("A language model predicts the text itself: queries are not used; a question is put before the text.")

if runner is not None:
    document.token_summary(runner)
if cfg is not None:
    document.configuration_words(cfg)
if runner is not None and cfg is not None and ss["document"].strip():
    document.export_panel()
document.import_panel()
