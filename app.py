"""lfviz app entry: shared state and sidebar, then routing. Pages live in pages/ and stay thin.

Icons are emoji: Streamlit fetches :material/...: icons from an outside server, and the app must work offline.
"""
import streamlit as st

from lfviz import app_state

st.set_page_config(page_title="lfviz: Longformer attention", page_icon="🔭", layout="wide")
app_state.init_state()

pages = [
    st.Page("pages/document.py", title="Document", icon="📄", default=True),
    st.Page("pages/pattern.py", title="Pattern", icon="🔲"),
    st.Page("pages/attention.py", title="Attention", icon="👁️"),
    st.Page("pages/global_lab.py", title="Global-token lab", icon="🧪"),
    st.Page("pages/head_view.py", title="Head view", icon="🕸️"),
    st.Page("pages/scaling.py", title="Scaling", icon="⏱️"),
]
nav = st.navigation(pages)
app_state.sidebar()
nav.run()
