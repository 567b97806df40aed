"""Figures of a model's learned sinks (pure: arrays in, go.Figure out). Sink mass is the share of a query's
attention taken by the learned sink logit, so that query's weights over the keys sum to 1 minus it
(`analysis.sink_mass`)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

WEBGL_ABOVE = 2000  # points on the line before it is drawn with WebGL
_MARGIN = dict(l=60, r=10, t=60, b=50)


def sink_grid(mass: np.ndarray, layers: list[int], current: tuple[int, int] | None = None) -> go.Figure:
    """(L, H) mean sink mass per layer (rows, `layers`) and head (columns), values in the cells, on a fixed
    0..1 scale so models and layers compare; the current (layer, head) outlined."""
    mass = np.asarray(mass, dtype=np.float32)
    L, H = mass.shape
    fig = go.Figure(go.Heatmap(z=np.round(mass, 4), x=list(range(H)), y=list(layers), zmin=0, zmax=1,
                               colorscale="Oranges", texttemplate="%{z:.2f}", colorbar=dict(title="sink mass"),
                               hovertemplate="layer %{y}, head %{x}<br>mean sink mass %{z:.4f}<br>(rows sum to "
                                             "1 minus it)<extra></extra>"))
    if current is not None and current[0] in layers:
        fig.add_shape(type="rect", x0=current[1] - 0.5, x1=current[1] + 0.5, y0=current[0] - 0.5,
                      y1=current[0] + 0.5, line=dict(color="#1f77b4", width=3))
    fig.update_layout(title="Sink mass per layer and head (mean over queries)", height=140 + 40 * L,
                      margin=_MARGIN, xaxis=dict(title="head", dtick=1),
                      yaxis=dict(title="layer", dtick=1, autorange="reversed"))
    return fig


def sink_line(mass: np.ndarray, tokens: list[str], layer: int, head: int) -> go.Figure:
    """(n,) sink mass of each query at one layer and head, over the query positions, on a 0..1 axis."""
    mass = np.asarray(mass, dtype=np.float32)
    n = len(mass)
    cls = go.Scattergl if n > WEBGL_ABOVE else go.Scatter
    fig = go.Figure(cls(x=np.arange(n), y=np.round(mass, 4), mode="lines", text=tokens[:n],
                        line=dict(color="#e6550d"), hovertemplate="query %{x} %{text}<br>sink mass %{y:.4f}"
                                                                  "<extra></extra>"))
    fig.update_layout(title=f"Layer {layer}, head {head}: sink mass of each query (mean {mass.mean():.3f})",
                      xaxis_title="query position", yaxis=dict(title="sink mass", range=[0, 1]), height=320,
                      margin=_MARGIN)
    return fig
