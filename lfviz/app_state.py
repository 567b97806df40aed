"""App-side glue (the one lfviz module that imports streamlit): cached model loading shared by all sessions."""
import streamlit as st

from .loading import load_runner


@st.cache_resource(show_spinner="Loading the model...")
def get_runner(model: str = "embedded", max_tokens: int = 4096):
    return load_runner(model, max_tokens=max_tokens)
