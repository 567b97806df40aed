"""Head view: bertviz's head view and model view of a short span of the document, from the captured weights."""
import json

import pandas as pd
import streamlit as st

from lfviz.app import cache, head_view, routing, state
from lfviz.figures import headview

routing.ensure_app_routing()
ss = st.session_state
st.title("Head view")
st.caption("bertviz's views of a span of the document: lines join each query token (left) to the keys it "
           "attends to (right), one colour per head. The weights are the model's own (captured in fp16), "
           "cut to the span. Everything is drawn offline.")

res = cache.run_document()
if res is None:
    st.stop()
if not res.capture:
    st.error("This run has no captured attention; open the Document page and run the document again.")
    st.stop()
doc = state.document_key()
mode, start, length, layers, heads = head_view.span_controls(res, doc)
if not layers or not heads:
    st.info("Pick at least one layer and one head to draw.")
    st.stop()
first_layer = int(ss["layer"]) if int(ss["layer"]) in layers else layers[0]  # the sidebar's, when shown

run_key = json.dumps([res.model_id, doc, res.config.to_dict(), ss.get("question"), list(ss.get("queries", ()))])
with st.spinner(f"Building the {mode} view of {length} tokens..."):
    html, mass, drawn = head_view.view(res, run_key, start, length, tuple(layers), mode, first_layer, tuple(heads))

end = start + length - 1
in_span = [g for g in res.config.global_tokens if start <= g <= end]
st.markdown(f"**Tokens {start}-{end}** of {res.n:,} - {len(layers)} layer(s) x {drawn} head(s) - global tokens in "
            f"the span (marked {headview.GLOBAL_MARK}): {', '.join(map(str, in_span)) or 'none'}")
# st.iframe (Streamlit >= 1.56) replaces components.v1.html, deprecated for removal after 2026-06-01; it scrolls.
st.iframe(html, height=headview.view_height(length, mode, len(layers), drawn))  # sized to its content
st.caption(f"Weights to keys outside the span are not shown and rows are not renormalised, so a row may sum to "
           f"less than 1: on average a row keeps {min(mass):.0%} to {max(mass):.0%} of its weight inside this "
           f"span, depending on the layer. "
           + ("Pick the layer in the view; click a head's colour square to hide it, double-click to show only it; "
              "hover a token to see its weights." if mode == "head" else
              "Click a thumbnail to enlarge that head; click it again to go back.")
           + f" Page size {len(html) / 1e6:.1f} MB.")

table = pd.DataFrame({"layer": layers, "weight kept in span (mean row sum)": [round(m, 4) for m in mass]})
with st.expander("Weight kept inside the span, per layer"):
    st.dataframe(table, hide_index=True, width="stretch")
    st.download_button("Download CSV", table.to_csv(index=False), file_name=f"span_weight_{start}_{end}.csv",
                       mime="text/csv", key="headview_csv")
st.download_button("Download this view (HTML, works offline)", html, file_name=f"{mode}_view_{start}_{end}.html",
                   mime="text/html", key="headview_download")
