"""Every app run goes through app.py (state, sidebar, navigation), even a shared link's first request."""
from __future__ import annotations

import streamlit as st

_ROUTED = "_routed_through_app"


def mark_routed() -> None:
    """Called by app.py just before it runs the page: this run went through app.py (state, sidebar, navigation)."""
    st.session_state[_ROUTED] = True


def ensure_app_routing() -> None:
    """Call first in every page. Streamlit (1.67) serves a request for /<page>, while no run of app.py has
    called st.navigation yet in this server process, through its legacy `pages/` folder discovery: the page runs
    without app.py (no state, no sidebar), so a shared link to a page would crash. Such a run lacks app.py's
    marker: clear the legacy flag and rerun, which goes through app.py and st.navigation for the same URL.
    The marker is per run (not the process-wide flag), so sessions starting at the same moment are safe."""
    if st.session_state.pop(_ROUTED, False):
        return
    try:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
    except ImportError:  # pragma: no cover - a Streamlit without the legacy router
        pass
    st.rerun()
