"""Figures of the Pattern page (pure: arrays/lists in, go.Figure out): an attention pattern as a picture of
positions (binned into cells, optionally zoomed to a span), per-layer attention memory, and how far a token's
information travels layer by layer. Pairs come from `lfviz.analysis.patterns` (never an n x n matrix)."""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from ..analysis.patterns import density, describe_reach
from ..wording import ordinal

# any attended pair shows (light blue), so a single global row stays visible in a 16-token cell
PATTERN_COLORS = [[0.0, "#ffffff"], [1e-6, "#c6dbef"], [0.5, "#4292c6"], [1.0, "#08306b"]]
PATTERN_HUES = {"Longformer": "#1f77b4", "full": "#7f7f7f", "BigBird": "#2ca02c"}
REACH_HUES = {"current configuration": "#1f77b4", "without global tokens": "#ff7f0e", "full attention": "#7f7f7f"}


def cell_edges(start: int, stop: int, max_cells: int) -> np.ndarray:
    """(k + 1,) token boundaries of at most `max_cells` cells covering positions [start, stop).

    Every cell holds the same whole number of tokens s = ceil((stop - start) / max_cells), except the last one,
    which may stop early at `stop`; s = 1 (one cell per token) when the span fits.
    """
    m = stop - start
    s = -(-m // max_cells)
    k = -(-m // s)
    return start + np.minimum(np.arange(k + 1) * s, m)


def _check_span(n: int, start: int, stop: int | None) -> int:
    stop = n if stop is None else stop
    if not 0 <= start < stop <= n:
        raise ValueError(f"zoom span [{start}, {stop}) must lie inside the document's 0..{n} and hold a token")
    return stop


def pattern_cells(rows: np.ndarray, cols: np.ndarray, n: int, start: int = 0, stop: int | None = None,
                  max_cells: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Share of attended (query, key) pairs per cell of the picture of positions [start, stop) on both axes.

    rows, cols: attended pairs (e.g. `patterns.longformer_pairs`). Returns z (k, k), z[i, j] = attended pairs /
    all pairs in query cell i x key cell j (exactly the mask when cells are single tokens), and edges (k + 1,)
    from `cell_edges`.
    """
    stop = _check_span(n, start, stop)
    keep = (rows >= start) & (rows < stop) & (cols >= start) & (cols < stop)
    edges = cell_edges(start, stop, max_cells)
    k, s = len(edges) - 1, int(edges[1] - edges[0])
    # k * s tokens split into k cells gives `density` whole cells of s tokens; the last may run past `stop`
    z = density(rows[keep] - start, cols[keep] - start, k * s, k)  # (k, k), pairs / s^2
    sizes = np.diff(edges)
    return z * (s * s) / np.outer(sizes, sizes), edges


def full_cells(n: int, start: int = 0, stop: int | None = None, max_cells: int = 256, causal: bool = False):
    """`pattern_cells` of full attention (every pair attended; causal: every key at or before the query), without
    listing n^2 pairs."""
    edges = cell_edges(start, _check_span(n, start, stop), max_cells)
    k = len(edges) - 1
    if not causal:
        return np.ones((k, k)), edges
    q = np.arange(edges[0], edges[-1])  # one row per query position in the span
    cell_of = np.searchsorted(edges, q, side="right") - 1
    lo, hi = edges[:-1], edges[1:]  # key cells [lo, hi)
    seen = np.clip(q[:, None] - lo[None, :] + 1, 0, hi - lo)  # (span, k): keys of each cell at or before q
    counts = np.zeros((k, k))
    np.add.at(counts, cell_of, seen)
    sizes = (hi - lo).astype(float)
    return counts / np.outer(sizes, sizes), edges


def cell_labels(edges: np.ndarray, tokens: list[str] | None = None) -> list[str]:
    """One label per cell in token positions: "128–143" for a range, "12: word" for a single token (escaped)."""
    out = []
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        if hi - lo > 1:
            out.append(f"{lo}–{hi - 1}")
        elif tokens is not None:
            out.append(f"{lo}: {html.escape(tokens[lo])}")
        else:
            out.append(str(lo))
    return out


GLOBAL_LINE = dict(color="#08306b", width=2.5)  # a global token's row and column: fully attended, drawn >= 2 px


def pattern_heatmap(z: np.ndarray, edges: np.ndarray, title: str, tokens: list[str] | None = None,
                    ticks: int = 8, height: int = 430, global_tokens=()) -> go.Figure:
    """Heatmap of z (k, k) = share of attended pairs per cell (rows: queries, columns: keys, query 0 on top).

    edges (k + 1,): token boundaries of the cells (`cell_edges`); axes read in token positions and
    hover gives each cell's query and key range, or the tokens themselves where a cell is one token.
    global_tokens: their rows and columns (every pair attended) are drawn on top as lines at least GLOBAL_LINE
    wide, so they show at any zoom (a one-token row is a hairline in a cell of many tokens).
    """
    labels = cell_labels(edges, tokens)
    k = len(labels)  # z goes out as float32 (binary in the JSON): 256 x 256 cells stay ~350 kB
    step = max(1, -(-k // ticks))
    axis = dict(type="category", tickmode="array", tickvals=labels[::step],
                ticktext=[str(int(e)) for e in edges[:-1][::step]], showgrid=False)
    fig = go.Figure(go.Heatmap(
        z=np.asarray(z, dtype=np.float32), x=labels, y=labels, zmin=0.0, zmax=1.0,
        colorscale=PATTERN_COLORS,
        colorbar=dict(title=dict(text="attended", side="right"), tickformat=".0%", thickness=12),
        hovertemplate="query %{y}<br>key %{x}<br>%{z:.1%} of pairs attended<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=10, t=50, b=50),
                      xaxis=dict(axis, title="key position"),
                      yaxis=dict(axis, title="query position", autorange="reversed"))
    for g in global_tokens:
        if edges[0] <= g < edges[-1]:
            i = int(np.searchsorted(edges, g, side="right")) - 1  # the cell holding token g (category index)
            fig.add_shape(type="line", x0=-0.5, x1=k - 0.5, y0=i, y1=i, line=GLOBAL_LINE, opacity=0.9)
            fig.add_shape(type="line", x0=i, x1=i, y0=-0.5, y1=k - 0.5, line=GLOBAL_LINE, opacity=0.9)
    return fig


def costs_figure(rows: list[dict], log: bool = False) -> go.Figure:
    """Grouped bars: attention-score memory per layer for each pattern. rows: `analysis.patterns.costs_frame` records."""
    fig = go.Figure()
    for name in dict.fromkeys(r["pattern"] for r in rows):
        mine = [r for r in rows if r["pattern"] == name]
        fig.add_bar(name=name, x=[f"layer {r['layer']}" for r in mine], y=[r["score memory (MiB)"] for r in mine],
                    marker_color=PATTERN_HUES.get(name), customdata=[[r["pairs per head"], r["share of n²"]]
                                                                      for r in mine],
                    hovertemplate=f"{name}<br>%{{x}}: %{{y:,.1f}} MiB<br>%{{customdata[0]:,}} pairs per head "
                                  f"(%{{customdata[1]:.2%}} of n²)<extra></extra>")
    fig.update_layout(barmode="group", title="Attention-score memory per layer (fp32, all heads)",
                      yaxis=dict(title="MiB", type="log" if log else "linear"), height=340,
                      margin=dict(l=50, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.15))
    return fig


SHORT_RUN = 150  # runs shorter than n / SHORT_RUN tokens also get a marker
REACH_HEIGHT, REACH_MARGIN = 380, dict(l=50, r=10, t=50, b=40)
MIN_GAP_PX = 2.0  # a gap between two runs drawn thinner than this reads as no gap: such runs are drawn dotted
GAP_DASH = "2px,2px"  # the dotted bar of runs whose gaps are too thin to draw one by one


def gap_groups(spans: list[tuple[int, int]], n: int, px_per_token: float) -> list[list[tuple[int, int]]]:
    """Consecutive runs (a, b) grouped where the gap between them, drawn at `px_per_token`, is under MIN_GAP_PX;
    a group of one run is drawn solid, a longer one as one dotted bar (a dilated band at whole-text zoom)."""
    groups: list[list[tuple[int, int]]] = []
    for a, b in spans:
        if groups and (a - groups[-1][-1][1] - 1) * px_per_token < MIN_GAP_PX:
            groups[-1].append((a, b))
        else:
            groups.append([(a, b)])
    return groups


def describe_gaps(group: list[tuple[int, int]]) -> str:
    """E.g. "every 2nd position from 200 to 1,200", or "41 runs with gaps of 1-3 tokens from 200 to 1,200"."""
    gaps = {a2 - b1 - 1 for (_, b1), (a2, _) in zip(group, group[1:])}
    where = f"from {group[0][0]:,} to {group[-1][1]:,}"
    if len(gaps) == 1 and all(a == b for a, b in group):
        return f"every {ordinal(min(gaps) + 1)} position {where}"
    return f"{len(group)} runs with gaps of {min(gaps)}-{max(gaps)} tokens {where}"


def reach_figure(curves: dict[str, list[list[tuple[int, int]]]], n: int, source: int,
                 backward: bool = False) -> go.Figure:
    """Exactly which positions hold the source token's information after l layers (x = 0 is the input, where
    only the source holds it): for each configuration and layer, one bar per run of reached positions, so a gap
    (between a global token and the band, or in a dilated band) shows as a gap. curves: `patterns.reach_curves`.
    Each configuration's bars sit side by side within a layer's column; a run of one token is one token tall.
    Runs whose gaps would be drawn thinner than MIN_GAP_PX at the figure's height (every 2nd position of a
    dilated band over a long text) are drawn as one dotted bar, the hover saying which positions it holds.
    backward: the curves say which tokens' information has reached the source (`reach_curves(backward=True)`)."""
    fig = go.Figure()
    k = max(1, len(curves))
    px_per_token = (REACH_HEIGHT - REACH_MARGIN["t"] - REACH_MARGIN["b"]) / max(1, n)
    for c, (name, layers) in enumerate(curves.items()):
        xs, ys, text, dots, dotted = [], [], [], [], ([], [], [])
        shift = (c - (k - 1) / 2) * 0.8 / k  # side by side inside the layer's column
        for x, spans in enumerate(layers):
            label = (f"{name}<br>{'input' if x == 0 else f'after {x} layer' + ('s' if x != 1 else '')}: "
                     f"{describe_reach(spans, n)}")
            for group in gap_groups(spans, n, px_per_token):
                (a, _), (_, b) = group[0], group[-1]
                if len(group) == 1:
                    xs += [x + shift, x + shift, None]
                    ys += [a - 0.5, b + 0.5, None]  # a one-token run stays visible
                    text += [label, label, None]
                else:
                    said = f"{label}<br>{describe_gaps(group)} (gaps too thin to draw at this size: dotted)"
                    dotted[0].extend([x + shift, x + shift, None])
                    dotted[1].extend([a - 0.5, b + 0.5, None])
                    dotted[2].extend([said, said, None])
                if (b - a + 1) * SHORT_RUN < n:  # a few tokens in a long text: a bar too short to see
                    dots.append((x + shift, (a + b) / 2, label))
        hue = REACH_HUES.get(name, "#9467bd")
        width = max(4, 60 // k)
        fig.add_scatter(x=xs, y=ys, text=text, name=name, mode="lines", line=dict(color=hue, width=width),
                        hovertemplate="%{text}<extra></extra>", legendgroup=name)
        if dotted[0]:
            fig.add_scatter(x=dotted[0], y=dotted[1], text=dotted[2], mode="lines", legendgroup=name,
                            name=f"{name}: dotted = positions with gaps", line=dict(color=hue, width=width,
                                                                                     dash=GAP_DASH),
                            hovertemplate="%{text}<extra></extra>")
        if dots:  # marked so a single global token or the source alone shows at any length
            fig.add_scatter(x=[d[0] for d in dots], y=[d[1] for d in dots], text=[d[2] for d in dots], mode="markers",
                            marker=dict(color=hue, size=9, symbol="square"), name=f"{name}: short runs",
                            legendgroup=name, showlegend=False, hovertemplate="%{text}<extra></extra>")
    fig.add_hline(y=source, line_dash="dot", line_color="#d62728",
                  annotation_text=f"{'chosen' if backward else 'source'} token {source}",
                  annotation_position="top left")
    layers = max((len(s) for s in curves.values()), default=1)
    title = (f"What reaches token {source}: whose information it can hold, layer by layer" if backward else
             f"Receptive field: where token {source}'s information has reached, layer by layer")
    fig.update_layout(title=title,
                      xaxis=dict(title="layers", tickmode="array", tickvals=list(range(layers)), range=[-0.6, layers - 0.4],
                                 ticktext=["input"] + [f"after {x}" for x in range(1, layers)]),
                      yaxis=dict(title="token position", range=[-0.5, n - 0.5]), height=REACH_HEIGHT,
                      margin=REACH_MARGIN, legend=dict(orientation="h", y=-0.2))
    return fig
