"""Figures of the lesson's steps that no full page draws (pure: numbers in, go.Figure out)."""
from __future__ import annotations

import plotly.graph_objects as go

HUES = ("#7f7f7f", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#d62728")


def pairs_figure(lengths: list[int], series: dict[str, list[int]]) -> go.Figure:
    """Attended (query, key) pairs per head vs tokens, one line per pattern, log-log: full attention's n² line
    climbs twice as steep as a window's n line. series: name -> pairs at each of `lengths`."""
    fig = go.Figure()
    for i, (name, pairs) in enumerate(series.items()):
        fig.add_scatter(x=list(lengths), y=[int(p) for p in pairs], mode="lines+markers", name=name,
                        line=dict(color=HUES[i % len(HUES)], width=3),
                        hovertemplate=f"{name}<br>%{{x:,}} tokens: %{{y:,}} pairs<extra></extra>")
    fig.update_layout(title="Attended pairs per head vs length (log-log): n² against n",
                      xaxis=dict(title="tokens", type="log", tickvals=list(lengths),
                                 ticktext=[f"{n:,}" for n in lengths]),
                      yaxis=dict(title="pairs per head", type="log"), height=380,
                      margin=dict(l=60, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def value_bars(values: dict[str, float], title: str, y_title: str, reference: float | None = None,
               reference_name: str = "") -> go.Figure:
    """One bar per named value (a gap, a perplexity), with an optional dotted reference line."""
    names = list(values)
    ys = [float(values[k]) for k in names]
    fig = go.Figure(go.Bar(x=names, y=ys, marker_color=[HUES[(i + 1) % len(HUES)] for i in range(len(names))],
                           text=[f"{y:.4g}" for y in ys], textposition="outside",
                           hovertemplate="%{x}: %{y:.5g}<extra></extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dot", line_color="#555555", annotation_text=reference_name,
                      annotation_position="top left")
    fig.update_layout(title=title, yaxis=dict(title=y_title, rangemode="tozero"), height=380,
                      margin=dict(l=60, r=10, t=50, b=40), showlegend=False)
    return fig
