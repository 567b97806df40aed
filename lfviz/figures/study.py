"""Figures of a placement study (pure: a results frame in, go.Figure out; rows as `study.job` writes them)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .fidelity import HUES


def _measured(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["error"].isna() & rows["gap"].notna()]


def gap_distributions(rows: pd.DataFrame) -> go.Figure:
    """Per strategy (in the study's order), the distribution of the distance from full attention over the
    documents: a box with every document as a point (hover: its id and token count)."""
    ok = _measured(rows)
    fig = go.Figure()
    for i, name in enumerate(dict.fromkeys(rows["strategy"])):
        mine = ok[ok["strategy"] == name]
        fig.add_box(y=mine["gap"].to_numpy(dtype=float), name=name, boxpoints="all", jitter=0.4, pointpos=0,
                    marker=dict(color=HUES[i % len(HUES)], size=5), line=dict(color=HUES[i % len(HUES)]),
                    text=[f"{d} ({t:,} tokens)" for d, t in zip(mine["id"], mine["tokens"])],
                    hovertemplate="%{text}<br>distance %{y:.5f}<extra>" + name + "</extra>")
    objective = ok["objective"].iloc[0] if len(ok) else ""
    fig.update_layout(title="Distance from full attention per document, by strategy (lower is closer)",
                      yaxis=dict(title=f"distance ({objective})", rangemode="tozero"), showlegend=False, height=380,
                      margin=dict(l=60, r=10, t=50, b=40))
    return fig


def length_trend(rows: pd.DataFrame, bins: int = 6) -> go.Figure:
    """Distance against document length: each document a point, and per strategy the mean over length bins
    (equal counts of documents per bin), so a strategy that degrades on long documents shows as a rising line."""
    ok = _measured(rows)
    fig = go.Figure()
    edges = np.unique(np.quantile(ok["tokens"].to_numpy(dtype=float), np.linspace(0, 1, bins + 1))) if len(ok) else []
    for i, name in enumerate(dict.fromkeys(rows["strategy"])):
        mine = ok[ok["strategy"] == name].sort_values("tokens")
        hue = HUES[i % len(HUES)]
        x, y = mine["tokens"].to_numpy(dtype=float), mine["gap"].to_numpy(dtype=float)
        fig.add_scatter(x=x, y=y, mode="markers", name=name, legendgroup=name, marker=dict(color=hue, size=6),
                        text=list(mine["id"]), hovertemplate="%{text}: %{x:,} tokens<br>%{y:.5f}<extra></extra>")
        if len(edges) > 2:
            which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
            means = [(x[which == b].mean(), y[which == b].mean()) for b in range(len(edges) - 1) if (which == b).any()]
            fig.add_scatter(x=[m[0] for m in means], y=[m[1] for m in means], mode="lines", name=f"{name} (mean)",
                            legendgroup=name, showlegend=False, line=dict(color=hue, width=2),
                            hovertemplate="mean of a length bin: %{y:.5f}<extra></extra>")
    fig.update_layout(title="Distance from full attention against document length",
                      xaxis_title="tokens", yaxis=dict(title="distance", rangemode="tozero"), height=380,
                      margin=dict(l=60, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig
