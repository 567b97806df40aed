"""lfviz app entry: builds the shared sidebar and routes to the pages (see pages/)."""
import streamlit as st

st.set_page_config(page_title="lfviz: Longformer attention", layout="wide")

pages = [st.Page("pages/document.py", title="Document", icon=":material/description:", default=True)]
st.navigation(pages).run()
