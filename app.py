"""lfviz app entry: shared state and sidebar, then routing. Pages live in pages/ and stay thin; what they share
lives in lfviz/app/.

No page icons: Streamlit fetches :material/...: icons from an outside server (the app must work offline),
and emoji need a font that a teaching machine may lack.
"""
import streamlit as st

from lfviz.app import routing, sidebar, state

st.set_page_config(page_title="lfviz: Longformer attention", page_icon="🔭", layout="wide")
state.init_state()

pages = [
    st.Page("pages/document.py", title="Document", default=True),
    st.Page("pages/pattern.py", title="Pattern"),
    st.Page("pages/attention.py", title="Attention"),
    st.Page("pages/global_lab.py", title="Global-token lab"),
    st.Page("pages/fidelity.py", title="Fidelity"),
    st.Page("pages/study.py", title="Study"),
    st.Page("pages/head_view.py", title="Head view"),
    st.Page("pages/scaling.py", title="Scaling"),
    st.Page("pages/lesson.py", title="Lesson"),
]
nav = st.navigation(pages)
sidebar.sidebar()
routing.mark_routed()
nav.run()
