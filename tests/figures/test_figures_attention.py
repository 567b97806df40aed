"""Figure builders of the Attention page: data shapes, values, labels, pooling, and HTML escaping."""
import html
import re

import numpy as np
import pytest
import torch

from lfviz.figures import attention as figs


def test_pool_max_and_mean_with_a_short_last_group():
    z = np.arange(14, dtype=np.float32).reshape(7, 2)  # rows 0..6
    pooled, kr, kc = figs.pool(z, max_rows=3, max_cols=10, how="max")
    assert (kr, kc) == (3, 1) and pooled.shape == (3, 2)
    assert pooled[:, 0].tolist() == [4, 10, 12]  # max of rows 0-2, 3-5, 6
    mean, _, _ = figs.pool(z, max_rows=3, max_cols=10, how="mean")
    assert mean[:, 1].tolist() == [3, 9, 13]
    same, kr, kc = figs.pool(z, 10, 10)
    assert (kr, kc) == (1, 1) and same is not None and np.array_equal(same, z)
    with pytest.raises(ValueError, match="'max' or 'mean'"):
        figs.pool(z, how="median")


def test_pool_takes_a_capture_tensor_where_it_lives_and_returns_only_the_pooled_cells():
    """Captures kept on a GPU are fp16 tensors: pooled on their device, the same numbers as pooling an array."""
    z = torch.rand(1000, 513, generator=torch.Generator().manual_seed(0)).half()
    for how in ("max", "mean"):
        got, kr, kc = figs.pool(z, 300, 600, how)
        want, _, _ = figs.pool(z.float().numpy(), 300, 600, how)
        assert isinstance(got, np.ndarray) and got.shape == (250, 513) and (kr, kc) == (4, 1)
        np.testing.assert_allclose(got, want, atol=1e-6)
    fig = figs.band_heatmap(z, 1, [str(i) for i in range(1000)], max_rows=300)
    assert np.asarray(fig.data[0].z).shape == (250, 513) and fig.data[0].y[0] == "0-3"


def test_band_heatmap_small_document_keeps_every_row_and_labels_tokens():
    band = np.random.default_rng(0).random((5, 5)).astype(np.float32)  # W = 4
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    fig = figs.band_heatmap(band, 2, tokens, title="L0 H1")
    trace = fig.data[0]
    assert np.asarray(trace.z).shape == (5, 5)
    assert list(trace.x) == [-4, -2, 0, 2, 4]  # (c - W/2) * dilation
    assert list(trace.y) == ["0 [CLS]", "1 the", "2 cat", "3 sat", "4 [SEP]"]
    assert np.allclose(trace.z, band, atol=1e-4)
    assert "query %{y}" in trace.hovertemplate
    assert "one row per token" in fig.layout.title.text and fig.layout.title.text.startswith("L0 H1")
    assert fig.layout.yaxis.autorange == "reversed"


def test_band_heatmap_long_document_is_pooled_and_says_how():
    n, width = 3500, 513
    band = np.zeros((n, width), dtype=np.float32)
    band[1234, 100] = 0.9  # one strong cell: max pooling keeps it, mean pooling dilutes it
    tokens = [f"t{i}" for i in range(n)]
    fig_max = figs.band_heatmap(band, 1, tokens, "max")
    z = np.asarray(fig_max.data[0].z)
    assert z.shape[0] <= figs.MAX_CELLS and z.shape[1] == width
    k = -(-n // figs.MAX_CELLS)
    assert z[1234 // k, 100] == pytest.approx(0.9)
    assert fig_max.data[0].y[0] == f"0-{k - 1}" and f"max over {k} tokens" in fig_max.layout.title.text
    z_mean = np.asarray(figs.band_heatmap(band, 1, tokens, "mean").data[0].z)
    assert z_mean[1234 // k, 100] == pytest.approx(0.9 / k, abs=1e-4)


def test_band_heatmap_wide_window_pools_columns_too():
    band = np.ones((50, 2049), dtype=np.float32)
    fig = figs.band_heatmap(band, 1, [str(i) for i in range(50)])
    z = np.asarray(fig.data[0].z)
    assert z.shape == (50, 513) and len(fig.data[0].x) == 513
    assert fig.data[0].x[0] == pytest.approx(-1024 + 1.5)  # mean offset of the first 4 columns
    assert "columns: max over 4 offsets" in fig.layout.title.text


def test_dense_heatmap_labels_both_axes():
    z = np.eye(3, 4, dtype=np.float32)
    fig = figs.dense_heatmap(z, ["a", "b", "c"], ["w", "x", "y", "z"], 10, 20, "zoom")
    trace = fig.data[0]
    assert list(trace.y) == ["10 a", "11 b", "12 c"] and list(trace.x) == ["20 w", "21 x", "22 y", "23 z"]
    assert np.asarray(trace.z).shape == (3, 4)
    assert "query %{y}" in trace.hovertemplate and "key %{x}" in trace.hovertemplate


def test_global_weights_lines_then_heatmap():
    tokens = [f"t{i}" for i in range(3000)]
    z = np.random.default_rng(1).random((2, 3000)).astype(np.float32)
    fig = figs.global_weights(z, [0, 7], tokens, "rows", "weight")
    assert len(fig.data) == 2 and fig.data[0].type == "scattergl"  # WebGL for long documents
    assert [t.name for t in fig.data] == ["0 t0", "7 t7"]
    assert np.allclose(fig.data[1].y, z[1], atol=1e-4)
    many = np.random.default_rng(2).random((20, 3000)).astype(np.float32)
    heat = figs.global_weights(many, list(range(0, 200, 10)), tokens, "rows", "weight")
    assert heat.data[0].type == "heatmap"
    assert np.asarray(heat.data[0].z).shape == (20, 600) and "max over 5 positions" in heat.layout.title.text
    assert list(heat.data[0].y)[:2] == ["0 t0", "10 t10"]


def test_head_grid_values_and_current_head():
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    fig = figs.head_grid(values, "entropy of a row (nats)", current=(1, 2))
    assert np.array_equal(np.asarray(fig.data[0].z), values)
    assert "entropy of a row (nats)" in fig.layout.title.text
    rect = fig.layout.shapes[0]
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (1.5, 2.5, 0.5, 1.5)


TEXT = "Hi <script>alert(1)</script> & \"you\"\nbye"


def offsets_of(text, words):
    out, pos = [(0, 0)], 0
    for w in words:
        a = text.index(w, pos)
        out.append((a, a + len(w)))
        pos = a + len(w)
    return out + [(0, 0)]


def test_received_html_escapes_everything_and_keeps_the_text():
    words = ["Hi", "<", "script", ">", "alert", "(", "1", ")", "</", "script", ">", "&", "\"", "you", "\"", "bye"]
    tokens = ["[CLS]"] + words + ["[SEP]"]
    offsets = offsets_of(TEXT, words)
    values = np.linspace(0, 1, len(tokens))
    out = figs.received_html(TEXT, tokens, offsets, values, 0, len(tokens), vmax=1.0)
    assert "<script" not in out and "</script" not in out
    assert "&lt;script&gt;" not in out  # tokens are wrapped one by one...
    assert "&lt;" in out and "&amp;" in out and "&quot;" in out
    visible = html.unescape(re.sub(r"<[^>]+>", "", out))  # ...but the text reads as the document
    assert visible == "[CLS] " + TEXT + " [SEP]"
    spans = re.findall(r'<span title="([^"]*)" style="background: rgba\(31, 119, 180, ([0-9.]+)\)', out)
    assert len(spans) == len(tokens)
    assert float(spans[0][1]) == 0.0 and float(spans[-1][1]) == pytest.approx(0.75)
    assert html.unescape(spans[2][0]).startswith("2 <: ")


def test_received_html_span_and_no_offsets():
    tokens = ["a", "<b>", "c", "d"]
    out = figs.received_html(None, tokens, None, np.ones(4), 1, 3, vmax=2.0)
    assert "&lt;b&gt;" in out and ">a<" not in out and ">d<" not in out
    assert out.count("rgba(31, 119, 180, 0.375)") == 2


def test_band_heatmap_contrast_clips_the_colour_not_the_values():
    band = np.zeros((100, 9), dtype=np.float32)
    band[:, 4] = np.linspace(0.01, 1.0, 100)  # 100 non-zero cells, the rest empty
    plain = figs.band_heatmap(band, 1, [str(i) for i in range(100)])
    assert plain.layout.coloraxis.cmax is None and plain.data[0].zmax is None
    clipped = figs.band_heatmap(band, 1, [str(i) for i in range(100)], clip=0.5)
    assert clipped.data[0].zmax == pytest.approx(np.quantile(band[:, 4], 0.5))  # of non-zero cells only
    assert np.asarray(clipped.data[0].z).max() == pytest.approx(1.0)
    assert "colour saturates at 0.505" in clipped.layout.title.text


def test_each_global_token_gets_its_own_hue():
    z = np.random.default_rng(0).random((4, 50))
    fig = figs.global_weights(z, [0, 7, 20, 33], [f"t{i}" for i in range(50)], "t", "w")
    hues = [t.line.color for t in fig.data]
    assert len(set(hues)) == 4 and all(h.startswith("#") for h in hues)


def test_text_pieces_read_as_the_document_and_mark_globals_and_matches():
    from lfviz.figures.token_text import text_pieces

    text = "Hello <b>world</b>,  again."
    tokens = ["[CLS]", "hello", "<", "b", ">", "world", "<", "/", "b", ">", ",", "again", ".", "[SEP]"]
    offsets = [(0, 0), (0, 5), (6, 7), (7, 8), (8, 9), (9, 14), (14, 15), (15, 16), (16, 17), (17, 18), (18, 19),
               (21, 26), (26, 27), (0, 0)]
    pieces = text_pieces(tokens, offsets, text, global_tokens=(0, 5), matches=(11,))
    assert "".join(p["t"] for p in pieces[1:-1]) == " " + text  # the real characters, spaces included
    assert pieces[5] == {"p": 5, "t": "world", "g": True, "m": False, "s": False}
    assert pieces[11]["t"] == "  again" and pieces[11]["m"] and pieces[0]["s"] and pieces[0]["g"]
    window = text_pieces(tokens, offsets, text, start=5, stop=8)
    assert [p["p"] for p in window] == [5, 6, 7] and window[0]["t"] == "world"
    pair = text_pieces(["[CLS]", "who", "?", "[SEP]", "hello", "[SEP]"], [(0, 0), (0, 3), (3, 4), (0, 0), (0, 5), (0, 0)],
                       "Hello", question="Who?")  # a run saved when question tokens' offsets indexed the question
    assert [p["t"] for p in pair] == ["[CLS]", "Who", "?", " [SEP]", "\nHello", " [SEP]"]  # question, then text
    assert [p["t"] for p in text_pieces(["[CLS]", "who", "?", "[SEP]", "hello"], [(0, 0), (0, 3), (3, 4), (0, 0),
                                        (0, 5)], "Hello", start=4, question="Who?")] == ["Hello"]
    no_offsets = text_pieces(["[CLS]", "a", "##b"], None, None)
    assert [p["t"] for p in no_offsets] == ["[CLS]", " a", "b"]


def test_a_value_map_colours_each_token_by_its_value():
    from lfviz.figures.token_text import text_pieces, value_colors

    text = "one two three four"
    tokens, offsets = ["one", "two", "three", "four"], [(0, 3), (4, 7), (8, 13), (14, 18)]
    pieces = text_pieces(tokens, offsets, text, values=[float("nan"), 0.5, -0.25, 0.0])
    assert [p["t"] for p in pieces] == ["one", " two", " three", " four"]  # still the text
    assert [p["v"] for p in pieces] == ["n/a", "+0.500", "-0.250", "+0.000"]
    assert pieces[0]["c"] is None and pieces[3]["c"] is None  # nothing to say: no colour
    assert pieces[1]["c"].startswith("rgba(214, 39, 40") and pieces[2]["c"].startswith("rgba(31, 119, 180")
    assert value_colors([1.0, 0.5, 100.0], scale=1.0) == ["rgba(214, 39, 40, 0.850)", "rgba(214, 39, 40, 0.500)",
                                                          "rgba(214, 39, 40, 0.850)"]
    window = text_pieces(tokens, offsets, text, start=2, values=[0.0, 1.0, 0.5, 0.0])
    assert window[0]["c"].endswith("0.500)")  # scaled over the whole text, not the window shown
    with pytest.raises(ValueError, match="one value per token"):
        text_pieces(tokens, offsets, text, values=[1.0])
