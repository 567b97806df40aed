"""Figures of fidelity to full attention (pure: lists in, go.Figure out): how the distance from full attention
builds up through the layers, one line per named placement of global tokens."""
from __future__ import annotations

import plotly.graph_objects as go

HUES = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def layer_fidelity(curves: dict[str, list[float]]) -> go.Figure:
    """Per layer (x = 0 the embeddings, then after each layer), the mean over tokens of 1 - cos between a token's
    hidden state under a placement and under full attention; one line per placement (`Fidelity.per_layer`).
    0 = the same states as full attention."""
    fig = go.Figure()
    layers = max((len(v) for v in curves.values()), default=1)
    for i, (name, values) in enumerate(curves.items()):
        fig.add_scatter(x=list(range(len(values))), y=[round(float(v), 6) for v in values], mode="lines+markers",
                        name=name, line=dict(color=HUES[i % len(HUES)], width=2),
                        hovertemplate=f"{name}<br>%{{x}}: 1 - cos %{{y:.5f}}<extra></extra>")
    fig.update_layout(title="How the distance from full attention builds up, layer by layer",
                      xaxis=dict(title="layer", tickmode="array", tickvals=list(range(layers)),
                                 ticktext=["embeddings"] + [f"after {x}" for x in range(1, layers)]),
                      yaxis=dict(title="mean 1 - cos to full attention", rangemode="tozero"), height=340,
                      margin=dict(l=60, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig
