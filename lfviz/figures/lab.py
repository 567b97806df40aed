"""Figures of the Global-token lab (pure: lists/arrays in, go.Figure out)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

GLOBAL_COLOR, TOKEN_COLOR = "#d62728", "#1f77b4"
WEBGL_ABOVE = 2000  # points; SVG below keeps single-point clicks reliable everywhere


def token_strip(tokens: list[str], scores, global_tokens, title: str) -> go.Figure:
    """One marker per token (x = position, y = score); global tokens in red. Selecting markers toggles them.

    Arrays, not lists, and a two-colour scale rather than n colour strings: plotly validates 4,096 points fast.
    """
    n = len(tokens)
    is_global = np.zeros(n)
    is_global[list(global_tokens)] = 1.0
    cls = go.Scattergl if n > WEBGL_ABOVE else go.Scatter
    fig = go.Figure(cls(x=np.arange(n), y=np.round(np.asarray(scores, dtype=float), 4), mode="markers",
                        marker=dict(color=is_global, colorscale=[[0, TOKEN_COLOR], [1, GLOBAL_COLOR]], cmin=0,
                                    cmax=1, size=6 + 5 * is_global),
                        text=tokens, customdata=np.arange(n),
                        hovertemplate="%{customdata}: %{text}<br>score %{y:.3f}<extra></extra>", name="tokens"))
    fig.update_layout(title=title, xaxis_title="token position", yaxis_title="score", height=320,
                      margin=dict(l=40, r=10, t=50, b=40), showlegend=False)
    return drag_selects(fig)


def drag_selects(fig: go.Figure) -> go.Figure:
    """The figure with a plain drag drawing a selection box while a click still selects one point.

    Streamlit's chart (1.67) turns click selection off whenever layout.dragmode is exactly "select", and sets
    "pan" when no dragmode is given. Plotly.js falls back to the template's dragmode when layout.dragmode is not
    a mode it knows: so "select" goes in the template and layout.dragmode gets a placeholder that Plotly.js
    ignores and Streamlit's check does not match. plotly.py would refuse the placeholder, hence the unvalidated
    copy. tests/browser/test_browser.py clicks and drags the lab's strip in Chromium to keep this honest."""
    fig.update_layout(template=dict(layout=dict(dragmode="select")))
    layout = fig.layout.to_plotly_json()  # small: the arrays stay in the traces
    layout["dragmode"] = "box"  # not a Plotly.js dragmode: the template's "select" applies
    return go.Figure(data=fig.data, layout=layout, _validate=False)


def loss_increase_strip(tokens: list[str], increase: list[float], title: str) -> go.Figure:
    """Per token, how much harder the variant finds it to predict than full attention does (nats; > 0 worse,
    red; < 0 better, blue). NaN (the first token, which nothing predicts) is left out."""
    x = np.arange(len(tokens))
    y = np.round(np.asarray(increase, dtype=float), 4)
    cls = go.Scattergl if len(tokens) > WEBGL_ABOVE else go.Scatter
    fig = go.Figure(cls(x=x, y=y, mode="markers", text=tokens, name="loss increase",
                        marker=dict(size=5, color=np.where(np.nan_to_num(y) > 0, GLOBAL_COLOR, TOKEN_COLOR)),
                        hovertemplate="%{x}: %{text}<br>%{y:+.3f} nats<extra></extra>"))
    fig.add_hline(y=0, line_color="#555555", line_width=1)
    fig.update_layout(title=title, xaxis_title="token position", yaxis_title="loss increase (nats)", height=300,
                      margin=dict(l=50, r=10, t=50, b=40), showlegend=False)
    return fig


OWN_SCALE = {"perplexity": "perplexity (lower = better)"}  # labels that are not scores: a panel each


def prediction_bars(diff_rows: list[dict], top: int = 10) -> go.Figure:
    """Baseline vs variant score per label (grouped bars), labels in baseline order. Metrics on other scales
    than the scores (a causal LM's perplexity, e.g. 58, next to next-token probabilities, e.g. 0.7) get a panel
    and a y axis of their own, so each reads on its own scale."""
    rows = diff_rows[:top]
    shared = [r for r in rows if r["label"] not in OWN_SCALE]
    panels = [[r] for r in rows if r["label"] in OWN_SCALE] + ([shared] if shared else [])
    titles = [OWN_SCALE.get(p[0]["label"], "score") for p in panels]
    widths = [max(1, len(p)) for p in panels]
    fig = make_subplots(rows=1, cols=max(1, len(panels)), column_widths=[w / sum(widths) for w in widths] or None,
                        horizontal_spacing=0.08 if len(panels) > 1 else 0.02)
    cut = lambda label: label if len(label) <= 40 else label[:37] + "..."
    for c, panel in enumerate(panels, start=1):
        labels = [cut(r["label"]) for r in panel]
        fig.add_bar(name="baseline", x=labels, y=[r["baseline"] for r in panel], marker_color="#7f7f7f",
                    legendgroup="baseline", showlegend=c == 1, row=1, col=c)
        fig.add_bar(name="variant", x=labels, y=[r["variant"] for r in panel], marker_color=GLOBAL_COLOR,
                    text=[None if r["delta"] is None else f"{r['delta']:+.3f}" for r in panel],
                    textposition="outside", legendgroup="variant", showlegend=c == 1, row=1, col=c)
        fig.update_yaxes(title_text=titles[c - 1], row=1, col=c)
    fig.update_layout(barmode="group", title="Predictions: baseline vs variant (labels show the change)",
                      height=360, margin=dict(l=40, r=10, t=50, b=80))
    return fig


NOISE = 1e-4  # changes below this are float rounding (fp16 captures, summation order), not a difference
MIN_SPAN = {"attention": 0.02, "hidden": 0.002}  # y ranges never shrink below these: noise stays near the floor


def layer_changes(attention: list[float], hidden: list[float]) -> go.Figure:
    """Per-layer change: attention (total variation of received attention, L0..) and hidden states (1 - cosine;
    the embeddings first, then after each layer). The x axis is in model order, embeddings first; each y axis
    spans at least MIN_SPAN, so rounding noise (below NOISE) stays a flat line at 0 instead of filling the plot."""
    order = ["emb"] + [f"L{i}" for i in range(max(len(attention), len(hidden) - 1))]
    clean = lambda v: [0.0 if abs(x) < NOISE else x for x in v]
    attention, hidden = clean(attention), clean(hidden)
    fig = go.Figure([
        go.Bar(name="attention moved (TV distance)", x=order[1:len(attention) + 1], y=attention),
        go.Scatter(name="hidden state change (1 - cos)", x=order[:len(hidden)], y=hidden, mode="lines+markers",
                   yaxis="y2"),
    ])
    top = lambda v, floor: max(floor, 1.15 * max(v, default=0.0))
    fig.update_layout(title="What the variant changes, layer by layer", height=340,
                      xaxis=dict(categoryorder="array", categoryarray=order),
                      yaxis=dict(title="attention moved", range=[0, top(attention, MIN_SPAN["attention"])]),
                      yaxis2=dict(title="1 - cosine", overlaying="y", side="right",
                                  range=[0, top(hidden, MIN_SPAN["hidden"])]),
                      margin=dict(l=40, r=40, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def sweep_line(rows: list[dict], x_key: str, label: str, reference: float | None = None,
               reference_label: str = "current configuration") -> go.Figure:
    """A prediction's score along a sweep; windows on a log axis (they double); a dotted line at `reference`
    (the score under the configuration in force) so every point reads as better or worse than it."""
    fig = go.Figure(go.Scatter(x=[r[x_key] for r in rows], y=[r["score"] for r in rows], mode="lines+markers",
                               text=[r.get("token", "") for r in rows], name="sweep",
                               hovertemplate=f"{x_key} %{{x}} %{{text}}<br>score %{{y:.4f}}<extra></extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dot", line_color=GLOBAL_COLOR,
                      annotation_text=f"{reference_label}: {reference:.4f}", annotation_position="top left")
    fig.update_layout(title=f"Score of '{label[:60]}' while sweeping the {x_key.replace('_', ' ')}",
                      xaxis=dict(title=x_key.replace("_", " ") + (" (two-sided, log scale)" if x_key == "window" else ""),
                                 type="log" if x_key == "window" else "linear"),
                      yaxis_title="score", height=320, margin=dict(l=40, r=10, t=50, b=40))
    return fig
