"""Study: placement strategies over a corpus, side by side (results of `lfviz study`, or a small study run here
on the bundled samples); the worst documents open in the lab with that strategy's global tokens."""
import streamlit as st

from lfviz.app import cache, routing, study

routing.ensure_app_routing()
st.title("Study: which placement keeps the model closest to full attention, over a corpus")
st.caption("One row per document and strategy, each a measured run against the same weights under full attention. "
           "Run a study on your corpus with `lfviz study CORPUS --out results.parquet` (add `--engine ray` for a "
           "Ray cluster), then open its results here.")

cfg = cache.current_config()
if cfg is not None and cache.current_runner() is not None:
    study.samples_study(cfg)
opened = study.open_results()
if opened is None:
    st.info("Open a study's results above, or run a small study on the samples.")
    st.stop()
rows, settings = opened
study.overview(rows, settings)
st.subheader("The documents furthest from full attention")
study.worst_documents(rows, settings)
