"""Figures of the Attention page (pure: arrays in, go.Figure or an HTML string out).

Payloads stay small: a heatmap never sends more than `MAX_CELLS` rows or columns; longer axes are pooled
(max or mean over consecutive groups) and the title says so.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
import torch

from .token_text import text_pieces

MAX_CELLS = 600  # rows (and columns) a heatmap sends before it pools
LINES_UP_TO = 8  # global tokens drawn as lines; more become a heatmap
WEBGL_ABOVE = 2000  # points per line
COLORSCALE = "Blues"
GLOBAL_HUES = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")  # one per line
_MARGIN = dict(l=60, r=10, t=60, b=50)


def _round(z: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(z, dtype=np.float32), 4)


def pool(z, max_rows: int = MAX_CELLS, max_cols: int = MAX_CELLS, how: str = "max") -> tuple[np.ndarray, int, int]:
    """(r, c) -> (ceil(r / kr), ceil(c / kc)) by `how` ("max" or "mean") over groups of kr rows and kc columns,
    the smallest factors that fit max_rows x max_cols; returns (pooled float32 numpy, kr, kc). A short last group
    is pooled over what it has. z: a numpy array or a torch tensor on any device (a capture kept on the GPU):
    it is pooled where it lives and only the pooled cells are moved."""
    if how not in ("max", "mean"):
        raise ValueError(f"pooling must be 'max' or 'mean', got {how!r}")
    t = torch.as_tensor(z).float()
    r, c = t.shape
    kr, kc = -(-r // max_rows), -(-c // max_cols)
    if kr == 1 and kc == 1:
        return t.cpu().numpy(), 1, 1
    gr, gc = -(-r // kr), -(-c // kc)
    padded = t.new_full((gr * kr, gc * kc), float("-inf") if how == "max" else 0.0)
    padded[:r, :c] = t
    blocks = padded.view(gr, kr, gc, kc)
    if how == "max":
        pooled = blocks.amax(dim=(1, 3))
    else:
        count = t.new_zeros(gr * kr, gc * kc)
        count[:r, :c] = 1.0
        pooled = blocks.sum(dim=(1, 3)) / count.view(gr, kr, gc, kc).sum(dim=(1, 3))
    return pooled.cpu().numpy(), kr, kc


def token_labels(tokens: list[str], start: int = 0) -> list[str]:
    """'position token' for each token, unique so they can label a categorical axis."""
    return [f"{start + i} {t}" for i, t in enumerate(tokens)]


def band_heatmap(band, dilation: int, tokens: list[str], how: str = "max", title: str = "Band",
                 max_rows: int = MAX_CELLS, max_cols: int = MAX_CELLS, clip: float | None = None) -> go.Figure:
    """One head's band (n, W + 1) as a heatmap (an array, or a tensor on any device: see `pool`): x = key offset
    (c - W/2) * dilation, y = query position (top to bottom). Documents longer than max_rows are pooled over
    groups of rows (`how`: max or mean); rows then read 'a-b' and the hover shows the range instead of the token.
    clip: a quantile (e.g. 0.99) of the non-zero cells where the colour scale saturates, so faint structure
    shows; the hover keeps true values."""
    n, width = band.shape
    z, kr, kc = pool(band, max_rows, max_cols, how)
    offsets = (np.arange(width) - (width - 1) // 2) * dilation
    x = offsets[::kc] if kc == 1 else pool(offsets[None, :].astype(np.float32), 1, max_cols, "mean")[0][0]
    if kr == 1:
        y = token_labels(tokens)
        hover = "query %{y}<br>key offset %{x}<br>weight %{z:.4f}<extra></extra>"
    else:
        y = [f"{a}-{min(a + kr, n) - 1}" for a in range(0, n, kr)]
        hover = f"queries %{{y}}<br>key offset %{{x}}<br>{how} weight %{{z:.4f}}<extra></extra>"
    note = f"rows: {how} over {kr} tokens" if kr > 1 else "one row per token"
    if kc > 1:
        note += f"; columns: {how} over {kc} offsets"
    zmax, shown = None, z[z > 0]  # empty cells (out of range, global keys) would drag the quantile to 0
    if clip is not None and shown.size:
        zmax = float(np.quantile(shown, clip))
        note += f"; colour saturates at {zmax:.3g}"
    fig = go.Figure(go.Heatmap(z=_round(z), x=np.round(x, 2), y=y, colorscale=COLORSCALE, zmin=0, zmax=zmax,
                               hovertemplate=hover, colorbar=dict(title="weight")))
    fig.update_layout(title=f"{title} ({note})", height=620, margin=_MARGIN,
                      xaxis_title=f"key offset from the query, in tokens (dilation {dilation})",
                      yaxis=dict(title="query position", autorange="reversed", type="category"))
    return fig


def dense_heatmap(z: np.ndarray, row_tokens: list[str], col_tokens: list[str], row_start: int, col_start: int,
                  title: str) -> go.Figure:
    """Dense (r, c) weights of a span, token labels on both axes (queries down, keys across)."""
    fig = go.Figure(go.Heatmap(z=_round(z), x=token_labels(col_tokens, col_start),
                               y=token_labels(row_tokens, row_start), colorscale=COLORSCALE, zmin=0,
                               hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>",
                               colorbar=dict(title="weight")))
    side = max(420, min(900, 14 * len(row_tokens) + 120))
    fig.update_layout(title=title, height=side, margin=dict(l=120, r=10, t=60, b=120),
                      xaxis=dict(title="key", type="category", tickangle=-60),
                      yaxis=dict(title="query", type="category", autorange="reversed"))
    return fig


def global_weights(z: np.ndarray, global_positions: list[int], tokens: list[str], title: str,
                   yaxis_title: str) -> go.Figure:
    """(G, n) weights over token positions, one per global token: lines in distinct hues when G <= LINES_UP_TO
    (WebGL for long documents), else a heatmap pooled (max) to at most MAX_CELLS x MAX_CELLS."""
    z = np.asarray(z, dtype=np.float32)
    G, n = z.shape
    names = [f"{g} {tokens[g]}" for g in global_positions]
    if G <= LINES_UP_TO:
        cls = go.Scattergl if n > WEBGL_ABOVE else go.Scatter
        x = np.arange(n)
        fig = go.Figure([cls(x=x, y=_round(row), mode="lines", name=name, text=tokens,
                             line=dict(color=GLOBAL_HUES[i % len(GLOBAL_HUES)]),
                             hovertemplate=f"{html.escape(name)}<br>%{{x}} %{{text}}<br>weight %{{y:.4f}}"
                                           f"<extra></extra>") for i, (row, name) in enumerate(zip(z, names))])
        fig.update_layout(yaxis_title=yaxis_title, legend=dict(title="global token"))
    else:
        pooled, kr, kc = pool(z, MAX_CELLS, MAX_CELLS, "max")
        y = names if kr == 1 else [f"globals {a}-{min(a + kr, G) - 1}" for a in range(0, G, kr)]
        fig = go.Figure(go.Heatmap(z=_round(pooled), x=np.arange(0, n, kc), y=y, colorscale=COLORSCALE, zmin=0,
                                   hovertemplate="global %{y}<br>position %{x}<br>weight %{z:.4f}<extra></extra>",
                                   colorbar=dict(title="weight")))
        fig.update_layout(yaxis=dict(title="global token", type="category", autorange="reversed"))
        if kc > 1:
            title += f" (max over {kc} positions)"
    fig.update_layout(title=title, xaxis_title="token position", height=360, margin=_MARGIN)
    return fig


def head_grid(values: np.ndarray, metric_label: str, current: tuple[int, int] | None = None,
              layers: list[int] | None = None) -> go.Figure:
    """(L, H) metric per layer and head, values written in the cells; the current head outlined."""
    values = np.asarray(values, dtype=np.float32)
    L, H = values.shape
    layers = list(range(L)) if layers is None else layers
    fig = go.Figure(go.Heatmap(z=np.round(values, 4), x=list(range(H)), y=layers, colorscale="Viridis",
                               texttemplate="%{z:.3g}", colorbar=dict(title=metric_label.split(" (")[0]),
                               hovertemplate=f"layer %{{y}}, head %{{x}}<br>{metric_label}: %{{z:.4f}}"
                                             f"<extra></extra>"))
    if current is not None and current[0] in layers:
        l, h = layers.index(current[0]), current[1]
        fig.add_shape(type="rect", x0=h - 0.5, x1=h + 0.5, y0=layers[l] - 0.5, y1=layers[l] + 0.5,
                      line=dict(color="#d62728", width=3))
    fig.update_layout(title=f"Head overview: {metric_label}", height=120 + 45 * L, margin=_MARGIN,
                      xaxis=dict(title="head", dtick=1), yaxis=dict(title="layer", dtick=1, autorange="reversed"))
    return fig


def _background(value: float, vmax: float) -> str:
    alpha = 0.0 if vmax <= 0 else min(max(value / vmax, 0.0), 1.0) * 0.75
    return f"rgba(31, 119, 180, {alpha:.3f})"


def received_html(text: str | None, tokens: list[str], offsets: list[tuple[int, int]] | None,
                  values: np.ndarray, start: int, stop: int, vmax: float, question: str | None = None) -> str:
    """The document's tokens start..stop-1 as HTML, each token's background = its value (0 white, >= vmax
    darkest). The pieces are the text view's (`token_text.text_pieces`): the text between two tokens (spaces,
    newlines) is kept; with a question, its tokens come first after "Question:" and the document starts on the
    next line (question tokens are no characters of the document). Special tokens show as boxed token strings.
    Every piece of text and every token goes through html.escape."""
    parts = ['<div style="line-height: 1.9; white-space: pre-wrap; font-size: 0.95rem;">']
    for piece in text_pieces(tokens, offsets, text, start, stop, question=question):
        i, v = piece["p"], float(values[piece["p"]])
        tip = html.escape(f"{i} {tokens[i]}: {v:.4f}", quote=True)
        if piece.get("h"):
            parts.append(f'<b style="color: #666;">{html.escape(piece["h"])}</b>')
        body = piece["t"].lstrip()
        parts.append(html.escape(piece["t"][:len(piece["t"]) - len(body)]))
        look = (" border: 1px solid #999; border-radius: 3px; padding: 0 2px; font-size: 0.8em;" if piece["s"] else
                " font-style: italic;" if piece.get("q") else "")
        parts.append(f'<span title="{tip}" style="background: {_background(v, vmax)};{look}">'
                     f'{html.escape(body)}</span>')
    parts.append("</div>")
    return "".join(parts)
