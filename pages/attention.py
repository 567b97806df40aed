"""Attention: one head's weights over the whole document (band form), a dense zoom, the global tokens, the
attention each token receives laid over the text, an overview of every head, and, for a model with learned sinks,
the sink mass."""
import json

import streamlit as st

from lfviz.analysis.positions import copied_every
from lfviz.app import attention_tabs as tabs
from lfviz.app import cache, routing, sink_mass, state

routing.ensure_app_routing()
ss = st.session_state
st.title("Attention")
st.caption("The sidebar's layer and head, on the current document and configuration. Weights are the "
           "model's attention probabilities (captured in fp16).")

res = cache.run_document()
if res is None:
    st.stop()
layer, head = int(ss["layer"]), int(ss["head"])
if layer not in res.capture.captured_layers:
    st.error(f"Layer {layer} was not captured (captured: {res.capture.captured_layers}); pick another layer in "
             f"the sidebar.")
    st.stop()
weights = res.capture.weights(layer)
run_key = json.dumps([res.model_id, state.document_key(), res.config.to_dict(), ss.get("question")])
st.markdown(f"**Layer {layer}, head {head}** - {res.n:,} tokens, {tabs.window_text(res, layer)}, dilation "
            f"{int(weights.dilation[head])}, global tokens: {', '.join(map(str, weights.global_tokens)) or 'none'}")
sink_mass.note(res)

band_tab, zoom_tab, global_tab, text_tab, grid_tab = tabs.open_tabs()
with band_tab:
    tabs.band(weights, layer, head, res.tokens)
with zoom_tab:
    tabs.zoom(weights, layer, head, res.tokens)
with global_tab:
    tabs.global_tokens(weights, layer, head, res.tokens, copied_every(cache.current_runner()))
with text_tab:
    tabs.received_over_text(res, run_key, layer, head)
with grid_tab:
    tabs.head_overview(res, run_key, layer, head)
sink_mass.section(res, layer, head)  # models with learned sinks only
