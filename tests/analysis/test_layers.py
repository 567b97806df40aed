"""Layers seen as layers (lfviz.analysis.layers) and which layers carry long-range information
(lfviz.analysis.ablation), on a tiny random Gemma 3 with the interleaved pattern (full layers 2 and 5)."""
import math

import pytest

from lfviz.analysis import ablation, layers
from lfviz.config import AttentionConfig
from lfviz.model.causal_runner import perplexity

N = 40


def test_layer_rows_say_which_layers_slide_and_how_far(tiny_gemma3):
    native = tiny_gemma3.native_windows
    assert layers.full_layers(native) == [2, 5] and layers.sliding_window(native) == 8  # S = 5 keys
    rows = layers.layer_rows(tiny_gemma3.native_config(), native, 6, 4, N)
    assert [r.kind for r in rows] == ["sliding", "sliding", "full"] * 2 and not any(r.changed for r in rows)
    assert rows[0].keys == 5 and rows[0].span == 4 and rows[2].keys == N and rows[2].span == N - 1
    short = layers.layer_rows(tiny_gemma3.native_config(), native, 6, 4, 4)  # a window wider than the text
    assert all(r.kind == "full" for r in short)
    edited = AttentionConfig(window=layers.set_windows(native, [2], 8), dilation=[1, 1, 2, 1, 1, 1])
    rows = layers.layer_rows(edited, native, 6, 4, N)
    assert rows[2].kind == "sliding" and rows[2].changed and rows[2].span == 8 and rows[2].native_kind == "full"
    wide = layers.widen_sliding(native, max(native), 16)
    assert wide == (16, 16, native[2], 16, 16, native[5])


def test_repeated_span_finds_the_second_copy():
    passage = list(range(100, 130))
    ids = [1] + passage + list(range(500, 560)) + passage + [7, 8]
    assert ablation.repeated_span(ids) == (91, 121)
    assert ablation.repeated_span(list(range(50))) is None
    assert ablation.repeated_span([5] * 20) == (8, 20)  # a run of one token repeats itself MIN_REPEAT back


def test_each_full_layer_made_to_slide_is_a_measured_run(tiny_gemma3):
    ids = list(range(1000, 1000 + N))
    rows = ablation.layer_ablation(tiny_gemma3, ids, span=(20, N))
    assert [r.name for r in rows] == ["native", "layer 2 slides", "layer 5 slides", "layers 2, 5 slide"]
    native = tiny_gemma3.native_windows
    for row in rows:
        cfg = tiny_gemma3.native_config() if not row.layers else \
            AttentionConfig(window=layers.set_windows(native, row.layers, 8))
        losses = tiny_gemma3.run(input_ids=ids, config=cfg, capture=False).predictions.token_scores[0]
        assert row.perplexity == pytest.approx(perplexity(losses), rel=1e-6)
        assert row.span_perplexity == pytest.approx(perplexity(losses, 20, N), rel=1e-6)
        assert len(row.losses) == N and math.isnan(row.losses[0])
    assert rows[3].perplexity != pytest.approx(rows[0].perplexity, rel=1e-6)  # the full layers matter here


def test_a_model_without_interleaved_layers_is_told_what_the_experiment_is_for(tiny_causal):
    with pytest.raises(ValueError, match="interleaved sliding and full layers"):
        ablation.layer_ablation(tiny_causal, list(range(1000, 1020)))
