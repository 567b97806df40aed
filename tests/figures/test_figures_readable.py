"""Figures that must read at the size they are drawn (issue 20, smaller defects): log axes with several labels,
metrics on scales of their own, dilated reach with visible gaps, ordinals in words. The browser half of these
checks is tests/browser/test_browser_readable.py."""
import math

import pytest

from lfviz.analysis import patterns
from lfviz.config import AttentionConfig
from lfviz.figures import pattern as pattern_figs
from lfviz.figures.lab import prediction_bars
from lfviz.figures.scaling import log_ticks, memory_figure, time_figure
from lfviz.wording import ordinal


def labels_in_view(axis) -> list[str]:
    """The tick labels a log axis shows: its tick values that fall inside its range."""
    lo, hi = axis.range
    return [t for v, t in zip(axis.tickvals, axis.ticktext) if lo <= math.log10(v) <= hi]


def test_a_time_axis_inside_one_decade_has_several_labels():
    """The user's Scaling page: times of 0.02-0.08 s (under a decade) showed a single label on the time axis."""
    rows = [dict(method=m, key=k, tokens=n, seconds=s, memory_mb=mb, scores_mb=mb, note="")
            for m, k, s0, mb in (("lfviz", "lfviz", 0.021, 40.0), ("full", "full", 0.018, 44.0))
            for n, s, mb in ((256, s0, mb), (512, 2 * s0, mb * 1.1), (1024, 4 * s0, mb * 1.2))]
    for fig, values in ((time_figure(rows), [r["seconds"] for r in rows]),
                        (memory_figure(rows), [r["memory_mb"] for r in rows])):
        shown = labels_in_view(fig.layout.yaxis)
        assert len(shown) >= 3, shown
        lo, hi = fig.layout.yaxis.range
        assert lo <= math.log10(min(values)) and math.log10(max(values)) <= hi  # every point stays in view
    assert labels_in_view(time_figure(rows).layout.yaxis)[:2] == ["0.02", "0.03"]


@pytest.mark.parametrize("values, expected", [
    ([0.02, 0.08], ["0.02", "0.03", "0.05", "0.07"]),  # 1-2-3-5-7 inside the range
    ([150, 2100], ["200", "500", "1,000", "2,000"]),  # 1-2-5, thousands separated
    ([0.001, 12], ["0.001", "0.01", "0.1", "1", "10"]),  # decades: one label per power of ten
    ([0.0501, 0.0523], ["0.04", "0.05", "0.06"]),  # a few percent: the axis widens to the neighbouring ticks
    ([3.0, 3.0], ["2", "3", "4"]),
])
def test_log_ticks(values, expected):
    vals, text, (lo, hi) = log_ticks(values)
    assert text == expected
    assert lo <= math.log10(min(vals + values)) and math.log10(max(vals + values)) <= hi


def test_perplexity_and_probabilities_read_on_their_own_axes():
    """A causal LM's lab: perplexity 58 next to next-token probabilities 0.7 on one axis squashed the
    probabilities flat. Each gets a panel with its own y axis."""
    rows = [{"label": "perplexity", "baseline": 58.0, "variant": 61.5, "delta": 3.5},
            {"label": "next: ' the'", "baseline": 0.7, "variant": 0.62, "delta": -0.08},
            {"label": "next: ' a'", "baseline": 0.1, "variant": 0.14, "delta": 0.04}]
    fig = prediction_bars(rows)
    axis_of = {x: t.yaxis for t in fig.data for x in t.x}
    assert axis_of["perplexity"] != axis_of["next: ' the'"] == axis_of["next: ' a'"]
    values = {}
    for t in fig.data:
        values.setdefault(t.yaxis, []).extend(t.y)
    assert max(values[axis_of["next: ' the'"]]) < 1 < min(values[axis_of["perplexity"]])
    layout = fig.layout.to_plotly_json()
    titles = {k: v.get("title", {}).get("text") for k, v in layout.items() if k.startswith("yaxis")}
    assert titles["yaxis"].startswith("perplexity") and titles["yaxis2"] == "score"
    assert [t.showlegend for t in fig.data] == [True, True, False, False]  # one legend entry per series
    one_scale = prediction_bars(rows[1:])  # probabilities alone: one panel, as before
    assert {t.yaxis for t in one_scale.data} == {"y"} and list(one_scale.data[1].text) == ["-0.080", "+0.040"]


def drawn_gaps_px(fig, name: str, column: int, n: int) -> list[float]:
    """Pixel heights of the gaps between the solid bars one configuration draws in a layer column."""
    trace = next(t for t in fig.data if t.name == name)
    ys = [(y0, y1) for x, y0, y1 in zip(trace.x[::3], trace.y[::3], trace.y[1::3]) if round(x) == column]
    px = (fig.layout.height - fig.layout.margin.t - fig.layout.margin.b) / n
    return [(b0 - a1) * px for (_, a1), (b0, _) in zip(ys, ys[1:])]


def test_dilated_reach_shows_its_gaps_at_the_drawn_size():
    """Dilation 2 on 1,400 tokens: the positions reached are every 2nd one, whose one-token gaps are a fifth of a
    pixel when drawn one by one (a solid bar). They are drawn as a dotted bar that says what it holds."""
    n, source = 1400, 700
    curves = patterns.reach_curves(AttentionConfig(window=64, dilation=2).resolve(3, 2), n, (), source)
    fig = pattern_figs.reach_figure(curves, n, source)
    assert all(g >= pattern_figs.MIN_GAP_PX for g in drawn_gaps_px(fig, "current configuration", 1, n))
    dotted = next(t for t in fig.data if t.name.startswith("current configuration: dotted"))
    assert dotted.line.dash == pattern_figs.GAP_DASH
    assert "every 2nd position from 636 to 764" in dotted.text[0]
    short_runs = [t for t in fig.data if t.name.endswith("short runs")]
    assert all(len(t.x) < 10 for t in short_runs)  # not a marker on every reached token (a solid column)
    # the same band on 40 tokens has gaps of 7 px: drawn one run at a time, no dotted bar
    small = pattern_figs.reach_figure(patterns.reach_curves(AttentionConfig(window=4, dilation=2).resolve(1, 1), 40,
                                                            (), 20), 40, 20)
    assert not [t for t in small.data if "dotted" in t.name]
    assert min(drawn_gaps_px(small, "current configuration", 1, 40)) >= pattern_figs.MIN_GAP_PX


def test_gap_groups_and_their_words():
    spans = [(0, 0), (2, 2), (4, 4), (50, 60), (62, 62)]
    assert pattern_figs.gap_groups(spans, 100, px_per_token=0.5) == [[(0, 0), (2, 2), (4, 4)], [(50, 60), (62, 62)]]
    assert pattern_figs.gap_groups(spans, 100, px_per_token=5) == [[s] for s in spans]
    assert pattern_figs.describe_gaps([(0, 0), (3, 3), (6, 6)]) == "every 3rd position from 0 to 6"
    assert pattern_figs.describe_gaps([(0, 2), (4, 4), (9, 1200)]) == "3 runs with gaps of 1-4 tokens from 0 to 1,200"


@pytest.mark.parametrize("n, word", [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"),
                                     (13, "13th"), (21, "21st"), (22, "22nd"), (23, "23rd"), (101, "101st"),
                                     (111, "111th"), (512, "512th")])
def test_ordinals(n, word):
    assert ordinal(n) == word
