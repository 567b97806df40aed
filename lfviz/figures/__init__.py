"""Pure figure builders: arrays in, plotly.graph_objects.Figure (or a self-contained HTML string) out. No I/O, no
streamlit. One module per app page (`attention.py`, `pattern.py`, `lab.py`, `scaling.py`) plus bertviz's views
(`headview.py`)."""
