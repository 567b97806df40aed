"""The layer strip and the ablation figures: data, colours and labels from the rows they are given."""
import math

from lfviz.analysis.ablation import AblationRow
from lfviz.analysis.layers import LayerRow
from lfviz.figures import layers as figs


def test_the_strip_colours_full_and_sliding_layers_and_outlines_changes():
    rows = [LayerRow(0, "sliding", 8, 5, 4, "sliding", False), LayerRow(1, "full", 512, 40, 39, "full", False),
            LayerRow(2, "sliding", 8, 5, 4, "full", True)]
    fig = figs.layer_strip(rows, 40, selected=1)
    bar = fig.data[0]
    assert list(bar.y) == [5, 40, 5] and list(bar.marker.color) == [figs.SLIDING, figs.FULL, figs.SLIDING]
    assert list(bar.marker.line.color)[2] == "#d62728" and "native: full" in bar.hovertext[2]
    assert "1 see the whole text" in fig.layout.title.text and "1 changed from native" in fig.layout.title.text


def test_the_loss_figure_shows_native_the_worst_run_and_all_sliding():
    nan = float("nan")
    mk = lambda name, layers, span_ppl: AblationRow(name, layers, 2.0, span_ppl, (nan, 1.0, 2.0, 3.0))
    rows = [mk("native", (), 1.0), mk("layer 1 slides", (1,), 50.0), mk("layer 3 slides", (3,), 1.0),
            mk("layers 1, 3 slide", (1, 3), 20.0)]
    fig = figs.ablation_losses(rows, (2, 4), width=1)
    assert [t.name for t in fig.data] == ["native", "layer 1 slides", "layers 1, 3 slide"]
    assert not any(math.isnan(v) for v in fig.data[0].y)  # the first token's missing loss drawn at the mean
    table = figs.ablation_table(rows, True)
    assert table[1]["x native (span)"] == 50.0 and table[0]["x native (text)"] == 1.0
