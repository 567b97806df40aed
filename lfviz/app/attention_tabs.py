"""The Attention page's tabs, one function each, for one captured layer and head: the whole document in band
form, a dense zoom, the global tokens, attention received laid over the text, and every head's statistics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from ..analysis import headstats
from ..figures import attention as figs
from .state import ATTENTION_TABS

TEXT_SPAN = 1000  # tokens shown at once in the text view
ZOOM_MAX = 256
TABS = list(ATTENTION_TABS)
TAB_KEY, TAB_WIDGET = "attention_tab", "attention_tab_widget"  # the open tab (plain key, in links); the widget's


def open_tabs():
    """The page's tabs, opened on the tab last shown. Streamlit forgets a widget's key on any run that does not
    draw it (a visit to another page), so the open tab lives in the plain key TAB_KEY, which links read and
    write too, and is handed to the widget before each draw; switching tabs copies it back."""
    ss = st.session_state
    ss[TAB_WIDGET] = ss.get(TAB_KEY) if ss.get(TAB_KEY) in TABS else TABS[0]
    return st.tabs(TABS, key=TAB_WIDGET, on_change=lambda: ss.update({TAB_KEY: ss[TAB_WIDGET]}))


@st.cache_data(max_entries=4, show_spinner=False)
def _stats(_res, key: str) -> pd.DataFrame:
    return headstats.stats_table(_res.capture)


@st.cache_data(max_entries=12, show_spinner=False)
def _received(_res, key: str, layer: int) -> np.ndarray:
    return headstats.received(_res.capture.weights(layer)).cpu().numpy()  # (H, n)


def window_text(res, layer: int) -> str:
    """E.g. "window 512 (two-sided)", or "window 4096 (two-sided; 1398 used, which covers the text)" when the
    configured window is wider than the text (the band keeps only offsets that reach a key)."""
    window = res.config.window
    asked = window[layer] if isinstance(window, tuple) else window
    used = res.capture.weights(layer).window
    return f"window {asked} (two-sided)" if used == asked else \
        f"window {asked} (two-sided; {used} used, which covers the text)"


def band(weights, layer: int, head: int, tokens: list[str]) -> None:
    b1, b2 = st.columns(2)
    how = b1.radio("Pool rows of long documents by", ["max", "mean"], horizontal=True, key="attention_band_pool",
                   help=f"Above {figs.MAX_CELLS} tokens, groups of consecutive query rows are merged into one.")
    contrast = b2.checkbox("Boost contrast (colour saturates at the 99th percentile)", value=True,
                           key="attention_band_contrast", help="The hover still shows the true weights.")
    rows = weights.heads(slice(head, head + 1)).band[0]  # (n, W + 1), where the capture lives: the figure pools it
    st.plotly_chart(figs.band_heatmap(rows, int(weights.dilation[head]), tokens, how,
                                      title=f"Layer {layer}, head {head}: band", clip=0.99 if contrast else None),
                    key="attention_band_chart", width="stretch")
    st.caption("Each row is a query; column c is the key at offset (c - W/2) x dilation. Weights to global "
               "tokens are not in the band (see Global tokens); global tokens' own rows are empty here.")


def zoom(weights, layer: int, head: int, tokens: list[str]) -> None:
    n = len(tokens)
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1])
    start = c1.number_input("Start position (queries)", 0, n - 1, 0, key="attention_zoom_start")
    length = c2.slider("Length", 2, min(ZOOM_MAX, max(n, 3)), min(64, max(n, 3)), key="attention_zoom_len")
    separate = c3.checkbox("Choose the key span separately", key="attention_zoom_separate")
    key_start = c4.number_input("Start position (keys)", 0, n - 1, int(start), key="attention_zoom_key_start",
                                disabled=not separate)
    rows = slice(int(start), min(int(start) + length, n))
    cols = slice(int(key_start), min(int(key_start) + length, n)) if separate else rows
    dense = headstats.dense_span(weights, head, rows, cols).numpy()  # (r, c)
    st.plotly_chart(figs.dense_heatmap(dense, tokens[rows], tokens[cols], rows.start, cols.start,
                                       f"Layer {layer}, head {head}: queries {rows.start}-{rows.stop - 1}, "
                                       f"keys {cols.start}-{cols.stop - 1}"),
                    key="attention_zoom_chart", width="stretch")
    st.caption(f"Row sums inside this key span: min {dense.sum(1).min():.3f}, max {dense.sum(1).max():.3f} "
               f"(1 when the span holds every key a query attends).")


def global_tokens(weights, layer: int, head: int, tokens: list[str], copied_every: int | None = None) -> None:
    """What the global tokens attend and receive. copied_every: the model's position embeddings repeat every this
    many tokens (a converted model, `analysis.positions.copied_every`), which puts regular spikes in the curves."""
    if not weights.global_tokens:
        st.info("No global tokens in this configuration: make a token global in the sidebar or the "
                "Global-token lab.")
        st.button("Make the first token global", key="attention_first_global",
                  on_click=lambda: st.session_state.update({"global": "0"}))
        return
    g_pos = list(weights.global_tokens)
    st.plotly_chart(figs.global_weights(weights.from_global[head].float().cpu().numpy(), g_pos, tokens,
                                        f"Layer {layer}, head {head}: what each global token attends to",
                                        "weight from the global token"),
                    key="attention_from_global_chart", width="stretch")
    st.plotly_chart(figs.global_weights(weights.to_global[head].float().cpu().numpy().T, g_pos, tokens,
                                        f"Layer {layer}, head {head}: what every token gives each global token",
                                        "weight to the global token"),
                    key="attention_to_global_chart", width="stretch")
    if copied_every and len(tokens) > copied_every:
        st.caption(f"Regular spikes every {copied_every} positions are the conversion's doing, not the text's: "
                   f"this converted model's position embeddings are the original {copied_every} copied over and "
                   f"over, so tokens {copied_every} apart carry the same position vector, and a global token "
                   "sees the same place in each copy.")
    table = headstats.global_summary(weights, head, tokens)
    st.dataframe(table, hide_index=True, width="stretch", key="attention_global_table")
    st.download_button("Download CSV", table.to_csv(index=False), "lfviz_global_tokens.csv", "text/csv",
                       key="attention_global_csv")


def received_over_text(res, run_key: str, layer: int, head: int) -> None:
    n = res.n
    t1, t2 = st.columns([1, 3])
    mean_heads = t1.toggle("Mean over heads", key="attention_recv_mean")
    with st.spinner("Summing the attention each token receives..."):
        recv_all = _received(res, run_key, layer)  # (H, n)
    recv = recv_all.mean(0) if mean_heads else recv_all[head]
    first = 0
    if n > TEXT_SPAN:
        first = t2.slider("First token shown", 0, n - TEXT_SPAN, 0, step=50, key="attention_recv_start")
    last = min(first + TEXT_SPAN, n)
    vmax = float(np.quantile(recv[first:last], 0.98)) or 1.0  # robust: one sink token must not wash out the rest
    st.caption(f"Tokens {first}-{last - 1} of {n}. Background = total weight the token receives from all queries "
               f"({'mean over heads' if mean_heads else f'head {head}'}, layer {layer}); darkest at >= "
               f"{vmax:.3g} (the span's 98th percentile). Hover a token for its value.")
    st.html(figs.received_html(res.text, res.tokens, res.offsets, recv, first, last, vmax, res.question))
    table = pd.DataFrame({"position": np.arange(n), "token": res.tokens, "received": np.round(recv, 5)})
    st.download_button("Download CSV (all tokens)", table.to_csv(index=False), "lfviz_received.csv", "text/csv",
                       key="attention_recv_csv")


def head_overview(res, run_key: str, layer: int, head: int) -> None:
    metric = st.selectbox("Metric", list(headstats.METRICS), format_func=headstats.METRICS.get,
                          key="attention_grid_metric")
    with st.spinner("Computing statistics for every head..."):
        stats = _stats(res, run_key)
    grid = stats.pivot(index="layer", columns="head", values=metric)
    st.plotly_chart(figs.head_grid(grid.to_numpy(), headstats.METRICS[metric], (layer, head), list(grid.index)),
                    key="attention_grid_chart", width="stretch")
    st.caption("Mean distance: weighted |query - key| in tokens; entropy: of each query's distribution, in nats; "
               "global share: weight on global tokens. Each is averaged over the query rows.")
    st.dataframe(stats, hide_index=True, width="stretch", key="attention_grid_table")
    st.download_button("Download CSV", stats.to_csv(index=False), "lfviz_head_stats.csv", "text/csv",
                       key="attention_grid_csv")
