"""Figures of the Scaling page (pure: rows from `lfviz.analysis.scaling.measure` in, go.Figure out).

Both plots are log-log, so a straight line of slope k means time (or memory) grows like n^k.
Points that were skipped or came out non-positive are left out (a log axis cannot show them).
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

COLORS = {"lfviz": "#d62728", "full": "#1f77b4", "full_band": "#17becf", "hf": "#ff7f0e"}
OTHER = "#7f7f7f"


def _series(rows: list[dict], value: str) -> dict[str, tuple[str, list[int], list[float], list[str]]]:
    """method label -> (key, tokens, values, notes), in row order, positive values only."""
    out: dict[str, tuple[str, list[int], list[float], list[str]]] = {}
    for r in rows:
        key, xs, ys, notes = out.setdefault(r["method"], (r.get("key", ""), [], [], []))
        v = r.get(value)
        if v is not None and v > 0:
            xs.append(int(r["tokens"]))
            ys.append(float(v))
            notes.append(r.get("note") or "")
    return out


LADDERS = ((1,), (1, 2, 5), (1, 2, 3, 5, 7), tuple(range(1, 10)))  # tick mantissas, sparsest first
MIN_LABELS = 3


def _tick_text(v: float) -> str:
    """0.02, 0.5, 3, 1,000: as many decimals as the value needs, thousands separated."""
    return f"{v:,.{max(0, -math.floor(math.log10(v) + 1e-9))}f}"


def log_ticks(values) -> tuple[list[float], list[str], list[float]]:
    """Labelled ticks for a log axis over positive `values`: (tick values, their labels, axis range in log10).

    The sparsest ladder (powers of ten, then 1-2-5, then more) that puts at least MIN_LABELS labels inside the
    data's range; where even 1-9 cannot (a range of a few percent), the axis widens to the neighbouring ticks.
    So times of 0.02-0.08 s read 0.02, 0.03, 0.05, 0.07, where a label per power of ten would leave one or none."""
    lo, hi = min(values), max(values)
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
    for ladder in LADDERS:
        grid = sorted(m * 10.0 ** e for e in decades for m in ladder)
        ticks = [v for v in grid if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]
        if len(ticks) >= MIN_LABELS:
            break
    while len(ticks) < MIN_LABELS:  # even 1-9 is too sparse (a range of a few percent): widen, below then above
        below = [v for v in grid if v < min(ticks, default=lo)]
        above = [v for v in grid if v > max(ticks, default=hi)]
        ticks = sorted(ticks + [below[-1] if len(ticks) % 2 == 0 else above[0]])
    bottom, top = math.log10(min(lo, ticks[0])), math.log10(max(hi, ticks[-1]))
    pad = 0.04 * (top - bottom or 1.0)  # the end labels and markers stay inside the plot
    return ticks, [_tick_text(v) for v in ticks], [bottom - pad, top + pad]


def _log_layout(fig: go.Figure, title: str, y_title: str, tokens) -> go.Figure:
    ticks = sorted(set(tokens))  # label the measured lengths, not plotly's 2-5-10 log ticks
    fig.update_layout(title=title, height=440, margin=dict(l=50, r=10, t=50, b=40), hovermode="closest",
                      legend=dict(orientation="h", y=-0.2, yanchor="top"))  # below the axis title
    fig.update_xaxes(type="log", title="tokens", tickvals=ticks, ticktext=[f"{t:,}" for t in ticks])
    values = [y for trace in fig.data for y in (trace.y or ()) if y is not None and y > 0]
    if values:
        tickvals, ticktext, span = log_ticks(values)
        fig.update_yaxes(type="log", title=y_title, tickvals=tickvals, ticktext=ticktext, range=span)
    else:
        fig.update_yaxes(type="log", title=y_title)
    return fig


def time_figure(rows: list[dict], crossover_tokens: float | None = None) -> go.Figure:
    """Seconds per forward pass vs tokens, one line per method (log-log); a dotted vertical line where lfviz
    starts to beat full attention (`analysis.scaling.crossover`), when the measured curves cross."""
    fig = go.Figure()
    if crossover_tokens:  # shapes take data values on a log axis, annotations take log10 of them
        fig.add_vline(x=crossover_tokens, line_dash="dot", line_color="#555555")
        fig.add_annotation(x=math.log10(crossover_tokens), y=1, yref="paper", xanchor="right", showarrow=False,
                           text=f"lfviz faster from ~{int(crossover_tokens):,} tokens ", font=dict(size=11))
    for label, (key, xs, ys, notes) in _series(rows, "seconds").items():
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label,
                                 line=dict(color=COLORS.get(key, OTHER)), customdata=notes,
                                 hovertemplate="%{x:,} tokens: %{y:.3g} s<br>%{customdata}<extra>" + label
                                 + "</extra>"))
    return _log_layout(fig, "Time of one forward pass vs sequence length", "seconds (log scale)",
                       [r["tokens"] for r in rows])


def memory_figure(rows: list[dict]) -> go.Figure:
    """Per method: measured peak memory growth (solid) and the analytic size of one layer's attention scores
    if held at once (dotted), both in MB vs tokens (log-log)."""
    fig = go.Figure()
    measured, analytic = _series(rows, "memory_mb"), _series(rows, "scores_mb")
    for label in dict.fromkeys(list(measured) + list(analytic)):
        for series, suffix, dash in ((measured, "measured", "solid"), (analytic, "scores, one layer", "dot")):
            if label not in series:
                continue
            key, xs, ys, notes = series[label]
            name = f"{label}: {suffix}"
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, legendgroup=label,
                                     line=dict(color=COLORS.get(key, OTHER), dash=dash),
                                     hovertemplate="%{x:,} tokens: %{y:.3g} MB<extra>" + name + "</extra>"))
    return _log_layout(fig, "Memory: measured (solid), attention scores (dotted)",
                       "MB (log scale)", [r["tokens"] for r in rows])
