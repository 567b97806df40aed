"""Head view: bertviz's head view and model view of a short span of the document, from the captured weights."""
import json

import pandas as pd
import streamlit as st

from lfviz import app_state, headview

app_state.ensure_app_routing()
ss = st.session_state
DEFAULT_SPAN = 64  # tokens: about 2 MB of inlined weights for 6 layers x 12 heads

st.title("Head view")
st.caption("bertviz's views of a span of the document: lines join each query token (left) to the keys it "
           "attends to (right), one colour per head. The weights are the model's own (captured in fp16), "
           "cut to the span. Everything is drawn offline.")

res = app_state.run_document()
if res is None:
    st.stop()
if not res.capture:
    st.error("This run has no captured attention; open the Document page and run the document again.")
    st.stop()
n, captured = res.n, res.capture.captured_layers
doc = app_state.document_key()

# -- the span and the view --------------------------------------------------------------------------------------
max_len = min(headview.MAX_SPAN, n)
ss["headview_length"] = min(max(1, int(ss.get("headview_length", min(DEFAULT_SPAN, max_len)))), max_len)
if ss.get("_headview_doc") != doc or "headview_start" not in ss:  # a new document: start at its first global token
    ss["_headview_doc"] = doc
    ss["headview_start"] = headview.default_start(n, ss["headview_length"], res.config.global_tokens)
ss["headview_start"] = min(max(0, int(ss["headview_start"])), n - ss["headview_length"])

left, mid, right = st.columns([1, 1, 2])
mode = left.radio("View", headview.MODES, horizontal=True, key="headview_mode",
                  format_func={"head": "Head view", "model": "Model view"}.get,
                  help="Head view: one layer, all heads overlaid. Model view: every layer x head at once.")
length = mid.number_input(f"Tokens in the span (max {max_len})", 1, max_len, step=8, key="headview_length",
                          help="The weights are inlined in the page: layers x heads x tokens² numbers.")
if n > length:
    start = right.slider("First token of the span", 0, n - length, key="headview_start",
                         help="Defaults to just before the first global token.")
else:
    start = 0
    right.caption(f"The whole document ({n} tokens) fits in the span.")
ss["headview_layers"] = [l for l in ss.get("headview_layers", captured) if l in captured]  # another model: fewer
layers = st.multiselect("Layers", captured, key="headview_layers",
                        help="Fewer layers make the page lighter (and the model view shorter).")
if not layers:
    st.info("Pick at least one layer to draw.")
    st.stop()
layers = sorted(layers)
first_layer = int(ss["layer"]) if int(ss["layer"]) in layers else layers[0]  # the sidebar's, when shown


# -- build (cached: the same span is redrawn on every rerun) -----------------------------------------------------
@st.cache_data(max_entries=6, show_spinner=False)
def _view(_res, run_key: str, start: int, length: int, layers: tuple[int, ...], mode: str, layer: int):
    att = headview.span_attention(_res.capture, start, length, layers)  # L x (H, N, N)
    tokens = headview.span_tokens(_res.tokens, start, length, _res.config.global_tokens)
    html = headview.head_view_html(att, tokens, mode, layer_labels=layers, layer=layer if mode == "head" else None)
    return html, headview.row_mass(att).tolist(), int(att[0].shape[0])


run_key = json.dumps([res.model_id, doc, res.config.to_dict(), ss.get("question"), list(ss.get("queries", ()))])
with st.spinner(f"Building the {mode} view of {length} tokens..."):
    html, mass, heads = _view(res, run_key, start, length, tuple(layers), mode, first_layer)

end = start + length - 1
in_span = [g for g in res.config.global_tokens if start <= g <= end]
st.markdown(f"**Tokens {start}-{end}** of {n:,} - {len(layers)} layer(s) x {heads} heads - global tokens in "
            f"the span (marked {headview.GLOBAL_MARK}): {', '.join(map(str, in_span)) or 'none'}")
# st.iframe (Streamlit >= 1.56) replaces components.v1.html, deprecated for removal after 2026-06-01; it scrolls.
st.iframe(html, height=headview.view_height(length, mode, len(layers), heads))
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
