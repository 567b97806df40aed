"""The Pattern page's cached numbers and sections: three patterns side by side, costs per layer, receptive field.
The numbers come from `lfviz.analysis.patterns` and the cell binning of `lfviz.figures.pattern` (never an n x n
matrix)."""
from __future__ import annotations

import streamlit as st

from ..analysis import patterns
from ..attention import bigbird
from ..figures import pattern as figs
from ..wording import ordinal
from . import cache

COST_COLUMNS = {  # counts with thousands separators (1,974,025), shares as percentages
    "pairs per head": st.column_config.NumberColumn(format="localized"),
    "share of n²": st.column_config.NumberColumn(format="percent"),
    "score memory (MiB)": st.column_config.NumberColumn(format="%.1f"),
}
ZOOM_DEFAULTS = {"pattern_cells": 256, "pattern_block": 64, "pattern_random": 3, "pattern_log": False}


@st.cache_data(max_entries=8, show_spinner=False)
def tokens(model: str, text: str, question: str | None):
    t = cache.get_runner(model).tokenize(text, question)
    return t.tokens, t.warnings


@st.cache_data(max_entries=16, show_spinner=False)
def longformer_cells(spec, n, global_tokens, head, start, stop, cells, causal=False):
    rows, cols = patterns.longformer_pairs(spec, n, global_tokens, head, causal)
    return figs.pattern_cells(rows, cols, n, start, stop, cells), len(rows)


@st.cache_data(max_entries=8, show_spinner=False)
def bigbird_cells(n, block, num_random, start, stop, cells):
    rows, cols = patterns.bigbird_pairs(n, block, num_random)
    return figs.pattern_cells(rows, cols, n, start, stop, cells), len(rows)


@st.cache_data(max_entries=8, show_spinner=False)
def costs(specs, n, num_heads, global_tokens, block, num_random, causal=False):
    return patterns.costs_frame(specs, n, num_heads, global_tokens, block, num_random, causal)


@st.cache_data(max_entries=8, show_spinner=False)
def reach(specs, n, global_tokens, source, causal=False):
    return patterns.reach_curves(specs, n, global_tokens, source, causal)


def view_controls(n: int) -> tuple[int, int, int, int, int]:
    """Zoom span, cells per side, BigBird block size and random blocks; a new document zooms out.
    Returns (start, stop, cells, block, num_random)."""
    ss = st.session_state
    if ss.get("_pattern_n") != n:  # a new document: zoom out, start the receptive field in the middle
        ss.update(_pattern_n=n, pattern_zoom=(0, n), pattern_source=n // 2)
    for key, value in {"pattern_zoom": (0, n), "pattern_source": n // 2, **ZOOM_DEFAULTS}.items():
        ss.setdefault(key, value)
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    c1.slider("Zoom: show positions [a, b)", 0, n, key="pattern_zoom",
              help="Narrow the span to a few hundred tokens to see single tokens: dilation gaps, the band's edge.")
    c2.select_slider("Cells per side (at most)", [128, 256, 512], key="pattern_cells",
                     help="Long spans are binned into cells of several tokens; each cell shows its share of "
                          "attended pairs. Spans this short or shorter show one cell per token.")
    c3.select_slider("BigBird block size", [16, 32, 64, 128, 256], key="pattern_block")
    c4.slider("BigBird random blocks", 0, 8, key="pattern_random")
    start, stop = ss["pattern_zoom"]
    if stop - start < 2:
        st.info("The zoom span holds fewer than 2 tokens: showing the whole document. Widen the slider's range.")
        start, stop = 0, n
    return start, stop, int(ss["pattern_cells"]), int(ss["pattern_block"]), int(ss["pattern_random"])


def side_by_side(spec, layer: int, head: int, n: int, tokens_: list[str], global_tokens, start: int, stop: int,
                 cells: int, block: int, num_random: int, causal: bool = False, trained_sparse: bool = False) -> None:
    """Longformer (this layer and head), full attention and BigBird, as pictures of the same span; causal: the
    model's own patterns keep only keys at or before each query; trained_sparse: the model was trained with its
    native (sliding) pattern, not full attention."""
    with st.spinner("Computing patterns..."):
        (lf_z, edges), lf_pairs = longformer_cells(spec, n, global_tokens, head, start, stop, cells, causal)
        full_z, _ = figs.full_cells(n, start, stop, cells, causal)
    size = int(edges[1] - edges[0])
    labels = tokens_ if size == 1 else None
    cell_note = ("One cell per token (hover shows the token)" if size == 1 else
                 f"One cell = {size} x {size} tokens (hover shows the ranges)")
    left, mid, right = st.columns(3)
    with left:
        d = spec.dilation[head]
        st.plotly_chart(figs.pattern_heatmap(
            lf_z, edges, f"Longformer: layer {layer}, head {head}<br><sup>window {spec.window}, dilation {d}, "
            f"{len(global_tokens)} global - {lf_pairs / n**2:.1%} of n² pairs</sup>", labels,
            global_tokens=global_tokens),
            key="pattern_longformer", width="stretch")
        st.caption((f"The current configuration, causal: each token attends itself and {spec.one_sided} previous "
                    "tokens" if causal else
                    f"The current configuration. Each query attends {spec.one_sided} neighbours on each side")
                   + (f", only every {ordinal(d)} position (gaps between them: zoom in to see them)" if d > 1 else "")
                   + "; global tokens (" + (", ".join(map(str, global_tokens[:10])) or "none")
                   + ("..." if len(global_tokens) > 10 else "") + ") light up a whole row (they attend "
                   + ("everything before them) and a column below them (every later token attends them: a sink). "
                      if causal else "everything) and a whole column (everything attends them). ") + f"{cell_note}.")
    with mid:
        title = ("Full causal attention<br><sup>every earlier key - about 50% of pairs</sup>" if causal else
                 "Full attention<br><sup>every pair - 100% of pairs</sup>")
        st.plotly_chart(figs.pattern_heatmap(full_z, edges, title, labels), key="pattern_full", width="stretch")
        pairs = f"every token attends every earlier token, n(n+1)/2 = {n * (n + 1) // 2:,} pairs per head."
        trained = ("Not what this model was trained with (its native pattern, in the Layers strip below, is; its "
                   "sliding layers never saw keys this far back): " if trained_sparse else
                   "What the model was trained with: ")
        st.caption((trained + pairs if causal else
                    f"BERT-style attention: every token attends every token, n² = {n * n:,} pairs per head.")
                   + " Cost and memory grow with the square of the length.")
    with right:
        minimum = patterns.bigbird_min_length(block, num_random)
        if n < minimum:
            st.info(f"No BigBird pattern for this text: BigBird's block-sparse attention needs at least "
                    f"{minimum:,} tokens with block size {block} and {num_random} random blocks, and this text has "
                    f"{n:,}. Below that BigBird falls back to full attention. Pick a smaller block size, fewer "
                    f"random blocks, or a longer document.")
            return
        with st.spinner("Computing BigBird's pattern..."):
            (bb_z, _), bb_pairs = bigbird_cells(n, block, num_random, start, stop, cells)
        st.plotly_chart(figs.pattern_heatmap(
            bb_z, edges, f"BigBird block-sparse<br><sup>block {block}, {num_random} random - "
            f"{bb_pairs / n**2:.1%} of n² pairs</sup>", labels), key="pattern_bigbird", width="stretch")
        st.caption(f"BigBird (ITC): tokens in blocks of {block}; each block attends its own and the two "
                   f"neighbouring blocks (window), the first and last block (global, which also attend "
                   f"everything) and {num_random} random blocks (fixed seed). {bigbird.EVAL_NOTE}"
                   + (" Drawn bidirectional, as Hugging Face implements it: a causal model would keep the lower "
                      "triangle." if causal else ""))


def cost_section(specs, n: int, num_heads: int, global_tokens, block: int, num_random: int,
                 causal: bool = False) -> None:
    """Attended pairs and score memory per layer and pattern: chart, table, CSV."""
    st.subheader("Cost per layer")
    with st.spinner("Counting attended pairs per layer..."):
        table = costs(specs, n, num_heads, global_tokens, block, num_random, causal)
    st.caption("Attended (query, key) pairs per head and the memory the attention scores take in one layer (fp32, "
               f"all {num_heads} heads) as each method stores them: Longformer a band of window + 1 columns "
               "plus the global columns and rows, full attention n x n, BigBird its blocks."
               + ("" if n >= patterns.bigbird_min_length(block, num_random) else
                  " BigBird is missing: this text is shorter than its minimum length (see above)."))
    st.checkbox("Logarithmic scale", key="pattern_log")
    st.plotly_chart(figs.costs_figure(table.to_dict("records"), log=st.session_state["pattern_log"]),
                    key="pattern_costs_chart", width="stretch")
    st.dataframe(table, hide_index=True, width="stretch", key="pattern_costs_table",  # full width: every column
                 column_config=COST_COLUMNS)
    st.download_button("Download CSV", table.to_csv(index=False), "lfviz_pattern_costs.csv", "text/csv",
                       key="pattern_costs_csv")


def receptive_field(specs, n: int, global_tokens, causal: bool = False) -> None:
    """How far a chosen token's information travels, layer by layer, with and without global tokens."""
    st.subheader("Receptive field")
    st.number_input("Source token", 0, n - 1, step=1, key="pattern_source",
                    help="Whose information to follow: after each layer, which positions could have received it?")
    source = int(st.session_state["pattern_source"])
    with st.spinner("Following the source token through the layers..."):
        curves = reach(specs, n, global_tokens, source, causal)
    st.plotly_chart(figs.reach_figure(curves, n, source), key="pattern_reach", width="stretch")
    summary = []
    for name, layers in curves.items():
        k = patterns.layers_to_cover(layers, n)
        summary.append(f"**{name}**: " + (f"the whole document after {k} layer{'s' if k != 1 else ''}" if k else
                                          f"after all {len(layers) - 1} layers, {patterns.describe_reach(layers[-1], n)}"))
    st.markdown(" - ".join(summary))
    st.caption("A token mixes in what it attends to, so after l layers the source's information can have reached "
               "every position within l windows (times the dilation) of it. A global token changes that: it "
               "attends the source within one layer, and every token attends it in the next, so two layers reach "
               "the whole document. Each bar is a run of positions reached; gaps are positions not reached (a "
               "dilated band skips positions; a global token is reached far from the band). A dotted bar holds gaps "
               "too thin to draw one by one at this size, e.g. every 2nd position of a dilated band: hover it.")
    if not global_tokens:
        st.caption("This configuration has no global tokens, so only it and full attention are shown.")
