"""Figures of fidelity: the per-layer curve, the fixed scale of the blind-spot map, the backward reach figure."""
import numpy as np

from lfviz.analysis import patterns
from lfviz.config import AttentionConfig
from lfviz.figures.fidelity import layer_fidelity
from lfviz.figures.pattern import reach_figure
from lfviz.figures.token_text import text_pieces, value_scale


def test_layer_curve_has_one_line_per_placement_from_the_embeddings():
    fig = layer_fidelity({"sidebar": [0.0, 0.1, 0.2], "no global tokens": [0.0, 0.3, 0.5]})
    assert [t.name for t in fig.data] == ["sidebar", "no global tokens"]
    assert list(fig.data[1].y) == [0.0, 0.3, 0.5] and list(fig.data[1].x) == [0, 1, 2]
    assert list(fig.layout.xaxis.ticktext) == ["embeddings", "after 1", "after 2"]


def test_a_fixed_scale_makes_two_maps_compare():
    tokens, offsets, text = ["a", "b"], [(0, 1), (2, 3)], "a b"
    worse = [0.4, 0.2]
    assert value_scale(worse) == 0.4 and value_scale([float("nan")]) == 1.0
    own = text_pieces(tokens, offsets, text, values=[0.2, 0.1])  # scaled by itself: as dark as the worse map
    fixed = text_pieces(tokens, offsets, text, values=[0.2, 0.1], value_scale=value_scale(worse))
    assert own[0]["c"].endswith("0.850)") and fixed[0]["c"].endswith("0.500)") and fixed[1]["c"].endswith("0.250)")


def test_backward_reach_figure_says_what_reaches_the_token():
    specs = AttentionConfig(window=4).resolve(3, 1)
    curves = patterns.reach_curves(specs, 40, (), 30, causal=True, backward=True)
    assert curves["current configuration"][1] == [(28, 30)]  # causal: 2 previous tokens and itself
    fig = reach_figure(curves, 40, 30, backward=True)
    assert "What reaches token 30" in fig.layout.title.text
    assert np.nanmax(np.asarray(fig.data[0].y, dtype=float)) <= 30.5  # nothing after it reaches it
