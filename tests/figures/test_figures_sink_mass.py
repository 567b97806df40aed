"""Sink-mass figures and their analysis: the grid's cells are each layer and head's mean over queries on a fixed
0..1 scale with the current head outlined; the line is one head's value per query."""
import numpy as np
import torch

from lfviz.analysis import sink_mass
from lfviz.attention.layout import AttentionWeights
from lfviz.figures.sink_mass import WEBGL_ABOVE, sink_grid, sink_line
from lfviz.model.capture import Capture


def test_grid_cells_scale_and_outline():
    mass = np.array([[0.1, 0.5, 0.9], [0.0, 0.25, 1.0]], dtype=np.float32)  # (L=2, H=3)
    fig = sink_grid(mass, [1, 3], current=(3, 2))
    trace = fig.data[0]
    np.testing.assert_allclose(np.asarray(trace.z), mass, atol=1e-6)
    assert list(trace.y) == [1, 3] and list(trace.x) == [0, 1, 2] and (trace.zmin, trace.zmax) == (0, 1)
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (1.5, 2.5, 2.5, 3.5)
    assert "mean over queries" in fig.layout.title.text
    assert not sink_grid(mass, [1, 3], current=(0, 0)).layout.shapes  # layer 0 not shown: nothing outlined


def test_line_per_query_and_webgl_for_long_texts():
    mass = np.linspace(0.2, 0.6, 5, dtype=np.float32)
    fig = sink_line(mass, list("abcde"), layer=1, head=2)
    np.testing.assert_allclose(np.asarray(fig.data[0].y), mass, atol=1e-4)
    assert "Layer 1, head 2" in fig.layout.title.text and "mean 0.400" in fig.layout.title.text
    assert tuple(fig.layout.yaxis.range) == (0, 1) and fig.data[0].type == "scatter"
    long = sink_line(np.full(WEBGL_ABOVE + 1, 0.3), ["t"] * (WEBGL_ABOVE + 1), 0, 0)
    assert long.data[0].type == "scattergl"


def _weights(sink):
    H, n = 2, 6
    return AttentionWeights(torch.zeros(H, n, 3), torch.zeros(H, n, 0), torch.zeros(H, 0, n), (1,) * H, (),
                            sink=sink)


def test_analysis_means_per_head_and_rows_per_query():
    sink = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.0] * 6])  # (H, n)
    cap = Capture({0: _weights(None), 1: _weights(sink)})
    assert sink_mass.has_sinks(cap) and not sink_mass.has_sinks(Capture({0: _weights(None)}))
    layers, mass = sink_mass.mean_per_head(cap)
    assert layers == [1] and mass.shape == (1, 2)
    np.testing.assert_allclose(mass, [[0.35, 0.0]], atol=1e-6)
    np.testing.assert_allclose(sink_mass.per_query(cap, 1, 0), sink[0].numpy())
    assert sink_mass.per_query(cap, 0, 0) is None
