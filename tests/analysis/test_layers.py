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


def test_the_experiment_reuses_the_first_run_and_gives_the_whole_runs_numbers(tiny_gemma3):
    """Issue 22: the experiment took minutes on Gemma 3. Each run that makes layer L slide starts at L from the
    first run's kept input and runs the output head only from the window's reach on; its numbers equal whole
    forwards (with sinks too), in fewer layer calls."""
    ids = list(range(2000, 2000 + 3 * N))
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in tiny_gemma3.model.get_decoder().layers]
    try:
        for cfg in (None, tiny_gemma3.native_config().replace(global_tokens=(0, 1, 2, 3))):
            calls.clear()
            fast = ablation.layer_ablation(tiny_gemma3, ids, cfg, span=(60, 3 * N))
            fast_calls = len(calls)
            calls.clear()
            whole = ablation.layer_ablation(tiny_gemma3, ids, cfg, span=(60, 3 * N), reuse=False)
            assert len(calls) == 4 * 6 and fast_calls == 6 + 4 + 1 + 4  # native, from 2, from 5, from 2
            for f, w in zip(fast, whole):
                assert f.name == w.name and math.isnan(f.losses[0])
                assert f.perplexity == pytest.approx(w.perplexity, rel=1e-4)
                assert f.span_perplexity == pytest.approx(w.span_perplexity, rel=1e-4)
                assert f.losses[1:] == pytest.approx(w.losses[1:], rel=1e-4, abs=1e-5)
            assert fast[3].span_perplexity != pytest.approx(fast[0].span_perplexity, rel=1e-3)
    finally:
        for h in hooks:
            h.remove()


def test_a_decoder_that_cannot_be_resumed_runs_each_configuration_once(tiny_gemma3, monkeypatch):
    """Where the first run cannot be kept for resuming, the experiment runs every configuration whole, once: it
    recorded (a whole decoder run) again before each later configuration's whole run."""
    from lfviz.model import layer_resume

    real, recorded = layer_resume.record, []

    def unresumable(*a, **k):
        recorded.append(1)
        state = real(*a, **k)
        state.resumable = False
        return state

    monkeypatch.setattr(layer_resume, "record", unresumable)
    calls = []
    hooks = [m.register_forward_hook(lambda *a: calls.append(1)) for m in tiny_gemma3.model.get_decoder().layers]
    try:
        rows = ablation.layer_ablation(tiny_gemma3, list(range(2000, 2000 + 3 * N)))
    finally:
        for h in hooks:
            h.remove()
    assert len(rows) == 4 and len(recorded) == 1
    assert len(calls) == 6 + 4 * 6  # the one recording, then four whole runs


def test_first_change_says_which_layer_and_position_a_window_change_reaches():
    from lfviz.config import LayerSpec
    from lfviz.model.layer_resume import first_change

    a = [LayerSpec(8, (1, 1))] * 3
    assert first_change(a, a, 40) == (3, 40)  # nothing changes
    b = [a[0], LayerSpec(100, (1, 1)), a[2]]
    assert first_change(b, a, 40) == (1, 5)  # the narrower window: query 4 still sees tokens 0..4 in both
    c = [a[0], LayerSpec(100, (2, 3)), LayerSpec(100, (2, 3))]
    assert first_change([a[0], LayerSpec(8, (2, 3)), LayerSpec(100, (2, 3))], c, 40) == (1, 9)  # every 2nd key
    assert first_change(a, c, 40) == (1, 0)  # dilation changed: anything may differ


def test_resume_equals_a_whole_run_and_refuses_a_change_before_its_layer(tiny_gemma3):
    import torch

    from lfviz.model import layer_resume

    ids = list(range(3000, 3000 + N))
    native = tiny_gemma3.native_config()
    state = layer_resume.record(tiny_gemma3, ids, native, keep=(2,))
    assert state.resumable and set(state.inputs) == {2}
    cfg = native.replace(window=layers.set_windows(tiny_gemma3.native_windows, [2, 5], 8))
    whole = tiny_gemma3.run(input_ids=ids, config=cfg, capture=False).last_hidden_state
    torch.testing.assert_close(layer_resume.resume(tiny_gemma3, state, cfg, 2), whole, rtol=1e-5, atol=1e-5)
    early = native.replace(window=layers.set_windows(tiny_gemma3.native_windows, [0], 4))
    with pytest.raises(ValueError, match="differs from the recorded one before layer 2"):
        layer_resume.resume(tiny_gemma3, state, early, 2)
    with pytest.raises(ValueError, match="layer 5's input was not kept"):
        layer_resume.resume(tiny_gemma3, state, cfg, 5)
