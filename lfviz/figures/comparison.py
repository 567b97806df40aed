"""Figures of patterns run on the model (pure: arrays in, go.Figure or colours out): one head's attention as it
was computed, pooled to cells, and a colour per LSH bucket."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

BUCKET_HUES = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
               "#17becf")


def captured_heatmap(z: np.ndarray, n: int, title: str, height: int = 380) -> go.Figure:
    """z (m, m): one head's mean attention per cell (rows: query cells top to bottom, columns: key cells) of an
    n-token text; a log-like colour scale (square root) so that faint attention far from the diagonal shows."""
    m = z.shape[0]
    edges = np.arange(m + 1) * n // m
    label = [f"{edges[i]}-{edges[i + 1] - 1}" if edges[i + 1] - edges[i] > 1 else str(edges[i]) for i in range(m)]
    fig = go.Figure(go.Heatmap(z=np.sqrt(np.clip(z, 0, None)).round(4), x=label, y=label, colorscale="Blues",
                               customdata=np.round(z, 5), colorbar=dict(title="√ weight"),
                               hovertemplate="queries %{y}<br>keys %{x}<br>mean weight %{customdata}<extra></extra>"))
    fig.update_layout(title=title, height=height, margin=dict(l=60, r=10, t=50, b=40),
                      xaxis=dict(title="keys", showticklabels=False), yaxis=dict(title="queries", autorange="reversed",
                                                                                  showticklabels=False))
    return fig


def bucket_colors(buckets) -> list[str]:
    """One CSS colour per token from its bucket (hues repeat after ten buckets, with a lighter shade)."""
    out = []
    for b in np.asarray(buckets, dtype=int):
        hue = BUCKET_HUES[b % len(BUCKET_HUES)]
        alpha = 0.55 if (b // len(BUCKET_HUES)) % 2 == 0 else 0.3
        r, g, bl = (int(hue[i:i + 2], 16) for i in (1, 3, 5))
        out.append(f"rgba({r}, {g}, {bl}, {alpha})")
    return out
