"""The Head view page's controls (view, span, layers) and its cached bertviz HTML."""
from __future__ import annotations

import streamlit as st

from ..figures import headview

DEFAULT_SPAN = 64  # tokens: about 2 MB of inlined weights for 6 layers x 12 heads


def span_controls(res, doc_key: str) -> tuple[str, int, int, list[int], list[int]]:
    """The view mode, span start and length, the layers and the heads to draw. A new document starts the span
    just before its first global token; the heads start as the sidebar's head alone (twelve overlaid heads make
    faint lines). Returns (mode, start, length, sorted layers, sorted heads; either empty if none picked)."""
    ss = st.session_state
    n, captured = res.n, res.capture.captured_layers
    max_len = min(headview.MAX_SPAN, n)
    ss["headview_length"] = min(max(1, int(ss.get("headview_length", min(DEFAULT_SPAN, max_len)))), max_len)
    if ss.get("_headview_doc") != doc_key or "headview_start" not in ss:
        ss["_headview_doc"] = doc_key
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
    ss["headview_layers"] = [l for l in ss.get("headview_layers", captured) if l in captured]  # another model
    H = res.capture.weights(captured[0]).stored.shape[0]
    ss.setdefault("headview_heads", [min(int(ss.get("head", 0)), H - 1)])
    ss["headview_heads"] = [h for h in ss["headview_heads"] if h < H]  # another model: fewer heads
    c1, c2 = st.columns(2)
    layers = c1.multiselect("Layers", captured, key="headview_layers",
                            help="Fewer layers make the page lighter (and the model view shorter).")
    heads = c2.multiselect("Heads", list(range(H)), key="headview_heads",
                           help="Heads drawn (each its own colour). Fewer heads make each line easier to follow.")
    return mode, int(start), int(length), sorted(layers), sorted(heads)


@st.cache_data(max_entries=6, show_spinner=False)
def view(_res, run_key: str, start: int, length: int, layers: tuple[int, ...], mode: str, layer: int,
         heads: tuple[int, ...]):
    """(HTML, mean row mass kept in the span per layer, heads drawn) of the span; cached, the span is redrawn on
    every rerun."""
    att = headview.span_attention(_res.capture, start, length, layers)  # L x (H, N, N)
    tokens = headview.span_tokens(_res.tokens, start, length, _res.config.global_tokens)
    html = headview.head_view_html(att, tokens, mode, layer_labels=layers, layer=layer if mode == "head" else None,
                                   heads=heads)
    return html, headview.row_mass(att).tolist(), len(heads)
