"""The Streamlit app's glue: the only part of lfviz that imports streamlit. Routing (`routing.py`), cached models
and runs (`cache.py`), session state and links (`state.py`), the shared sidebar (`sidebar.py`), and the widget
groups and page logic that only the app uses. Pages in `pages/` call these and the library below."""
