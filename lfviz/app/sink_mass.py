"""The Attention page's sink-mass section, for a model with learned sinks (gpt-oss): the share of each query's
attention its head's sink logit takes, per layer and head and per query. Models without sinks get nothing."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from ..analysis import sink_mass
from ..figures import sink_mass as figs

EXPLAIN = ("This model has learned sinks: each head adds one learned logit to every query's softmax and then drops "
           "it, so the sink takes a share of each query's attention without pointing at any token. That share is "
           "the sink mass; each row's weights sum to 1 minus this.")


def note(res) -> None:
    """One line under the page's header, so the band's and zoom's row sums below 1 are not a surprise."""
    if sink_mass.has_sinks(res.capture):
        st.caption("Learned sinks: each query's weights sum to 1 minus its sink mass (see Sink mass below the "
                   "tabs).")


def section(res, layer: int, head: int) -> None:
    """The sink mass of every captured layer and head (mean over queries) and, for the sidebar's layer and head,
    of each query. Nothing when the model has no learned sinks."""
    if not sink_mass.has_sinks(res.capture):
        return
    st.subheader("Sink mass")
    st.caption(EXPLAIN)
    layers, mass = sink_mass.mean_per_head(res.capture)  # (L, H)
    st.plotly_chart(figs.sink_grid(mass, layers, (layer, head)), key="sink_grid_chart", width="stretch")
    rows = sink_mass.per_query(res.capture, layer, head)  # (n,)
    if rows is None:
        st.info(f"Layer {layer} has no sink mass captured.")
        return
    st.plotly_chart(figs.sink_line(rows, res.tokens, layer, head), key="sink_line_chart", width="stretch")
    table = pd.DataFrame({"position": range(len(rows)), "token": res.tokens[:len(rows)],
                          "sink mass": rows.round(5), "row sum": (1 - rows).round(5)})
    st.download_button("Download CSV (this head, every query)", table.to_csv(index=False), "lfviz_sink_mass.csv",
                       "text/csv", key="sink_csv")
