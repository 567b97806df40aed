"""Document page: the model, the text, and what Longformer attention is. (More pages: next issue.)"""
import streamlit as st

from lfviz.app_state import get_runner

st.title("lfviz: see Longformer attention")
st.markdown(
    "Longformer lets each token attend to a sliding **window** of its neighbours (optionally **dilated**: every "
    "d-th neighbour) and gives a few **global** tokens attention to and from everything, so cost grows linearly "
    "with length and documents of 4,096-16,384 tokens fit where BERT stops at 512."
)
runner = get_runner("embedded")
st.info(runner.description)
text = st.text_area("Document", "Paste a long document here.", key="doc_text", height=200)
if text.strip():
    ids = runner.tokenize(text).input_ids
    st.metric("Tokens", len(ids))
else:
    st.warning("The document is empty: paste some text to see its tokens.")
