"""Figures of layers as layers: the per-layer strip (which layers slide, which see everything, how far each
reaches) and the ablation (which layers carry long-range information). Pure: rows in, a Plotly figure out."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..analysis.ablation import AblationRow
from ..analysis.layers import LayerRow

FULL, SLIDING = "#1f4e79", "#9ecae1"  # dark = sees every earlier token, light = a window


def layer_strip(rows: list[LayerRow], n: int, selected: int | None = None) -> go.Figure:
    """One bar per layer: its height is how many keys a query sees (log axis, up to the text's n), dark for a
    full layer and light for a sliding one; a layer that differs from the model's own pattern is outlined in red and
    labelled with what it is natively."""
    x = [str(r.layer) for r in rows]
    colors = [FULL if r.kind == "full" else SLIDING for r in rows]
    lines = ["#d62728" if r.changed else "rgba(0,0,0,0)" for r in rows]
    hover = [f"layer {r.layer}: {r.kind} - sees {r.keys:,} keys, back {r.span:,} tokens (window {r.window:,})"
             f"<br>native: {r.native_kind}" + (" - changed" if r.changed else "") for r in rows]
    fig = go.Figure(go.Bar(x=x, y=[r.keys for r in rows], marker=dict(color=colors, line=dict(color=lines, width=3)),
                           hovertext=hover, hoverinfo="text",
                           text=["full" if r.kind == "full" else f"{r.keys:,}" for r in rows],
                           textposition="outside", cliponaxis=False))
    fig.add_hline(y=n, line=dict(color="#888", dash="dot"), annotation_text=f"the whole text: {n:,} tokens",
                  annotation_position="top left")
    if selected is not None and 0 <= selected < len(rows):
        fig.add_vrect(x0=selected - 0.5, x1=selected + 0.5, fillcolor="#ffd54f", opacity=0.25, line_width=0)
    changed = sum(r.changed for r in rows)
    fig.update_layout(title=f"Layers: {sum(r.kind == 'full' for r in rows)} see the whole text (dark), "
                            f"{sum(r.kind == 'sliding' for r in rows)} slide (light)"
                            + (f"; {changed} changed from native (red outline)" if changed else ""),
                      xaxis_title="layer", yaxis=dict(title="keys a query sees", type="log", range=[0, np.log10(n) + .3]),
                      height=320, margin=dict(l=60, r=20, t=60, b=40), showlegend=False)
    return fig


def _smooth(values, width: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    v = np.where(np.isnan(v), np.nanmean(v) if np.isfinite(v).any() else 0.0, v)
    if width <= 1 or len(v) < width:
        return v
    kernel = np.ones(width) / width
    return np.convolve(v, kernel, mode="same")


def ablation_losses(rows: list[AblationRow], span: tuple[int, int] | None = None, width: int = 16) -> go.Figure:
    """Per-token loss along the text (a running mean over `width` tokens) of the first run (native), the run that
    raises the span's (else the text's) perplexity most, and the last run (all full layers sliding); the span
    shaded. Where the text is predictable only through a full layer, making it slide raises the loss."""
    fig = go.Figure()
    worst = max(rows[1:], key=lambda r: np.nan_to_num(r.span_perplexity if span else r.perplexity)) \
        if len(rows) > 1 else None
    shown = [rows[0]] + [r for r in (worst, rows[-1]) if r is not None and r is not rows[0]]
    for row in dict.fromkeys(shown):  # native, the run that hurts most, all full layers sliding
        fig.add_trace(go.Scatter(y=_smooth(row.losses, width), mode="lines", name=row.name))
    if span:
        fig.add_vrect(x0=span[0], x1=span[1] - 1, fillcolor="#ffd54f", opacity=0.25, line_width=0,
                      annotation_text="the span", annotation_position="top left")
    fig.update_layout(title=f"Loss per token (running mean of {width})", xaxis_title="token position",
                      yaxis_title="loss (nats)", height=320, margin=dict(l=60, r=20, t=60, b=40),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def ablation_table(rows: list[AblationRow], has_span: bool) -> list[dict]:
    """The rows as a table: perplexity of the text and of the span, each also as x native."""
    base = rows[0]
    out = []
    for r in rows:
        row = {"run": r.name, "perplexity (text)": round(r.perplexity, 2),
               "x native (text)": round(r.perplexity / base.perplexity, 2)}
        if has_span:
            row["perplexity (span)"] = round(r.span_perplexity, 2)
            row["x native (span)"] = round(r.span_perplexity / base.span_perplexity, 2)
        out.append(row)
    return out
