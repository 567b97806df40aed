"""Pattern page numbers and figures: binned pictures equal the mask predicate, costs follow the window, reach
figures show what global tokens do."""
import numpy as np
import pytest

from lfviz.analysis import patterns
from lfviz.config import AttentionConfig, LayerSpec
from lfviz.figures import pattern as figs
from lfviz.attention.mask import dense_mask


def block_means(mask: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Plain reference: mean of a dense (n, n) mask over each cell given by token edges."""
    e = edges.tolist()
    return np.array([[mask[a:b, c:d].mean() for c, d in zip(e, e[1:])] for a, b in zip(e, e[1:])])


def test_heatmap_is_the_mask_predicate_cell_by_cell():
    spec, n, g = LayerSpec(6, (2, 1)), 40, (0, 25)
    rows, cols = patterns.longformer_pairs(spec, n, g, head=0)
    z, edges = figs.pattern_cells(rows, cols, n, max_cells=256)
    mask = dense_mask(spec, n, g)[0].numpy()
    assert np.array_equal(z, mask.astype(float)) and edges.tolist() == list(range(n + 1))
    tokens = [f"t{i}" for i in range(n - 1)] + ["<s>"]
    fig = figs.pattern_heatmap(z, edges, "Longformer", tokens)
    heat = fig.data[0]
    assert np.array_equal(np.asarray(heat.z), mask.astype(np.float32))
    assert heat.x[0] == "0: t0" and heat.y[39] == "39: &lt;s&gt;"  # token labels on hover, escaped
    assert fig.layout.yaxis.autorange == "reversed"  # query 0 on top
    # global rows and columns fully lit, non-global rows attend them
    assert (z[0] == 1).all() and (z[:, 0] == 1).all() and (z[25] == 1).all() and (z[:, 25] == 1).all()
    # dilation 2: every other neighbour, gaps between (row 10 sees 4, 6, ..., 16 and the globals)
    assert np.flatnonzero(z[10]).tolist() == [0, 4, 6, 8, 10, 12, 14, 16, 25]
    # head 1 has no dilation: no gaps
    z1, _ = figs.pattern_cells(*patterns.longformer_pairs(spec, n, g, head=1), n)
    assert np.flatnonzero(z1[10]).tolist() == [0, 7, 8, 9, 10, 11, 12, 13, 25]


@pytest.mark.parametrize("n, cells", [(1000, 100), (1003, 100), (300, 7)])
def test_downsampled_cells_are_cell_means_with_token_edges(n, cells):
    spec, g = LayerSpec(16, (3,)), (5,)
    z, edges = figs.pattern_cells(*patterns.longformer_pairs(spec, n, g), n, max_cells=cells)
    assert z.shape[0] <= cells and edges[0] == 0 and edges[-1] == n
    assert np.allclose(z, block_means(dense_mask(spec, n, g)[0].numpy(), edges))
    assert z.max() <= 1.0  # shares, never above 1 (also where the last cell is cut short)
    fz, fedges = figs.full_cells(n, max_cells=cells)
    assert np.array_equal(fedges, edges)
    assert np.allclose(fz, figs.pattern_cells(*patterns.full_pairs(n), n, max_cells=cells)[0])
    labels = figs.pattern_heatmap(z, edges, "x").data[0].x
    size = int(edges[1])
    assert labels[1] == f"{size}–{2 * size - 1}" and labels[-1].endswith(f"–{n - 1}")


def test_zoom_shows_the_exact_span_and_dilation_gaps_at_4k():
    n, spec = 4096, LayerSpec(512, (2,))
    rows, cols = patterns.longformer_pairs(spec, n, (0,))
    whole, _ = figs.pattern_cells(rows, cols, n, max_cells=256)
    assert np.isclose(whole[100, 100], 0.5)  # 16-token cells: the dilated band is half lit, gaps invisible
    z, edges = figs.pattern_cells(rows, cols, n, start=2000, stop=2100)
    assert edges[0] == 2000 and edges[-1] == 2100 and z.shape == (100, 100)
    assert np.array_equal(z, dense_mask(spec, n, (0,))[0].numpy()[2000:2100, 2000:2100].astype(float))
    assert z[50, 51] == 0 and z[50, 52] == 1  # the gap is visible once zoomed
    labels = figs.pattern_heatmap(z, edges, "zoom").data[0].x
    assert labels[0] == "2000"
    with pytest.raises(ValueError, match="zoom span"):
        figs.pattern_cells(rows, cols, n, start=10, stop=10)


def test_costs_follow_the_window_and_bigbird_needs_its_minimum():
    specs64 = AttentionConfig(window=64).resolve(2, 4)
    specs512 = AttentionConfig(window=512).resolve(2, 4)
    narrow = patterns.costs_frame(specs64, 800, 4, (0,))
    wide = patterns.costs_frame(specs512, 800, 4, (0,))
    assert list(narrow["pattern"]) == ["Longformer", "full", "BigBird"] * 2
    lf = lambda f: f[f["pattern"] == "Longformer"]["pairs per head"].tolist()
    assert lf(narrow)[0] < lf(wide)[0]
    assert lf(narrow)[0] == len(patterns.longformer_pairs(specs64[0], 800, (0,))[0])
    short = patterns.costs_frame(specs64, 700, 4, (0,))
    assert "BigBird" not in set(short["pattern"])  # 700 < 704 tokens
    fig = figs.costs_figure(narrow.to_dict("records"), log=True)
    assert [t.name for t in fig.data] == ["Longformer", "full", "BigBird"]
    assert list(fig.data[1].y) == narrow[narrow["pattern"] == "full"]["score memory (MiB)"].tolist()
    assert fig.layout.yaxis.type == "log"


def runs_at(fig, name, x):
    """The runs of positions one configuration's bars cover at layer column x (bars are a - 0.5 .. b + 0.5)."""
    trace = next(t for t in fig.data if t.name == name and t.mode == "lines")
    pts = [(xx, y) for xx, y in zip(trace.x, trace.y) if xx is not None and round(xx) == x]
    return [(round(pts[i][1] + 0.5), round(pts[i + 1][1] - 0.5)) for i in range(0, len(pts), 2)]


def test_reach_figure_global_token_reaches_everything_at_layer_2():
    specs = AttentionConfig(window=8).resolve(4, 2)
    n, source = 300, 150
    curves = patterns.reach_curves(specs, n, (0,), source)
    assert list(curves) == ["current configuration", "without global tokens", "full attention"]
    fig = figs.reach_figure(curves, n, source)
    assert runs_at(fig, "current configuration", 0) == [(150, 150)]
    assert runs_at(fig, "current configuration", 1) == [(0, 0), (146, 154)]  # the global token, then a gap
    assert runs_at(fig, "current configuration", 2) == [(0, 299)]
    assert runs_at(fig, "without global tokens", 2) == [(142, 158)]  # 2 layers x 4 neighbours per side
    assert runs_at(fig, "full attention", 1) == [(0, 299)]
    dilated = patterns.reach_curves(AttentionConfig(window=4, dilation=3).resolve(1, 1), 40, (), 20)
    assert runs_at(figs.reach_figure(dilated, 40, 20), "current configuration", 1) == \
        [(14, 14), (17, 17), (20, 20), (23, 23), (26, 26)]  # every 3rd position: one-token bars with gaps
    long = patterns.reach_curves(AttentionConfig(window=512).resolve(2, 1), 2300, (0,), 1960)
    marks = next(t for t in figs.reach_figure(long, 2300, 1960).data if t.name.endswith("short runs"))
    assert (0.0, 1960.0) in {(round(x), y) for x, y in zip(marks.x, marks.y)}  # the source alone, at the input
    assert (1.0, 0.0) in {(round(x), y) for x, y in zip(marks.x, marks.y)}  # the global token, after one layer
    assert patterns.layers_to_cover(curves["current configuration"], n) == 2
    assert patterns.layers_to_cover(curves["without global tokens"], n) is None
    assert list(patterns.reach_curves(specs, n, (), source)) == ["current configuration", "full attention"]


def test_global_rows_and_columns_stay_visible_at_whole_document_zoom():
    """4,096 tokens in 256 cells: a global token's row is 1/16 of a cell; it is drawn as lines >= 2 px wide."""
    spec, n = LayerSpec(512, (1,)), 4096
    z, edges = figs.pattern_cells(*patterns.longformer_pairs(spec, n, (0, 1000)), n, max_cells=256)
    fig = figs.pattern_heatmap(z, edges, "t", global_tokens=(0, 1000, 5000))
    lines = [(sh.x0, sh.x1, sh.y0, sh.y1) for sh in fig.layout.shapes]
    cell = 1000 // 16
    assert (-0.5, 255.5, 0, 0) in lines and (0, 0, -0.5, 255.5) in lines
    assert (-0.5, 255.5, cell, cell) in lines and (cell, cell, -0.5, 255.5) in lines
    assert len(lines) == 4 and all(sh.line.width >= 2 for sh in fig.layout.shapes)  # 5000 is outside the text
    zoomed, zedges = figs.pattern_cells(*patterns.longformer_pairs(spec, n, (0, 1000)), n, 990, 1010)
    assert len(figs.pattern_heatmap(zoomed, zedges, "t", global_tokens=(0, 1000)).layout.shapes) == 2  # 0 is off-span


@pytest.mark.parametrize("n, start, stop, cells", [(10, 0, None, 10), (300, 0, None, 7), (1000, 100, 400, 64)])
def test_causal_full_cells_are_the_lower_triangle(n, start, stop, cells):
    z, edges = figs.full_cells(n, start, stop, cells, causal=True)
    lower = np.tril(np.ones((n, n), dtype=bool))
    want = block_means(lower, edges) if start == 0 and stop is None else \
        block_means(lower[start:stop, start:stop], edges - start)
    assert np.allclose(z, want)
    rows, cols = patterns.longformer_pairs(LayerSpec(2 * n, (1,)), n, causal=True)
    assert np.allclose(figs.pattern_cells(rows, cols, n, start, stop, cells)[0], z)


def test_causal_costs_count_half_the_pairs():
    spec = LayerSpec(64, (1,))
    causal = {c.name: c for c in patterns.layer_costs(spec, 800, 4, (0,), causal=True)}
    both = {c.name: c for c in patterns.layer_costs(spec, 800, 4, (0,))}
    assert causal["full"].pairs == 800 * 801 // 2 and causal["Longformer"].pairs < both["Longformer"].pairs
    assert causal["BigBird"].pairs == both["BigBird"].pairs
