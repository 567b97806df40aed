"""Pure pieces of the Global-token lab: presets, comparisons, sweeps, figures."""
import dataclasses

import pytest
import torch

import lfviz
from lfviz.analysis import presets
from lfviz.analysis.compare import attention_change, hidden_change, received, token_strip_values
from lfviz.figures import lab as figs
from lfviz.attention.layout import weights_to_dense
from lfviz.analysis.sweep import position_points, sweep_global_position, sweep_window, window_points

TEXT = "The licence ends on termination. Fees are due monthly! Is the budget approved? Yes."


def test_presets(embedded):
    t = embedded.tokenize(TEXT)
    assert presets.every_kth(10, 4) == (0, 4, 8)
    with pytest.raises(ValueError, match="k >= 1"):
        presets.every_kth(10, 0)
    starts = presets.sentence_starts(t.tokens, t.offsets)
    assert [t.tokens[i] for i in starts] == ["the", "fees", "is", "yes"]
    assert [t.tokens[i] for i in presets.matching("TERMINATION", t.tokens, t.offsets, TEXT)] == ["termination"]
    assert [t.tokens[i] for i in presets.matching(r"fee\w*|budget", t.tokens, t.offsets, TEXT, regex=True)] == \
        ["fees", "budget"]
    with pytest.raises(ValueError, match="not a valid regular expression"):
        presets.matching("(", t.tokens, t.offsets, TEXT, regex=True)
    with pytest.raises(ValueError, match="empty"):
        presets.matching("  ", t.tokens, t.offsets, TEXT)
    assert presets.toggle((0, 5), [5, 7]) == (0, 7)


def test_a_decimal_point_does_not_end_a_sentence(embedded):
    text = "The river is 2.4 km long. It floods in spring! Levels rose 3.5% e.g. in May. Done."
    t = embedded.tokenize(text)
    starts = lambda *a: [t.tokens[i] for i in presets.sentence_starts(t.tokens, *a)]
    assert starts(t.offsets, text) == ["the", "it", "levels", "done"]
    assert starts(t.offsets) == ["the", "it", "levels", "in", "done"]  # without the text, "e.g. in" looks like an end
    assert {"4", "5"}.isdisjoint(starts()) and starts()[:3] == ["the", "it", "levels"]  # without offsets: no digit


def test_preset_positions_dispatch_every_preset(embedded):
    t = embedded.tokenize(TEXT, "when does the licence end?")
    pick = lambda kind, **kw: presets.preset_positions(kind, t.tokens, t.offsets, TEXT, t.question_tokens, **kw)
    assert pick("first token") == (0,)
    assert pick("question tokens") == tuple(t.question_tokens) and len(t.question_tokens) == 6
    assert pick("sentence starts") == presets.sentence_starts(t.tokens, t.offsets)
    assert pick("every k-th token", k=7) == tuple(range(0, len(t.tokens), 7))
    assert [t.tokens[i] for i in pick("tokens matching a word", pattern="fees")] == ["fees"]
    assert [t.tokens[i] for i in pick("tokens matching a regex", pattern=r"budg\w+")] == ["budget"]
    assert pick("first k tokens (sinks)", k=4) == (0, 1, 2, 3)
    assert set(presets.PRESETS) == {"first token", "first k tokens (sinks)", "question tokens", "sentence starts",
                                    "every k-th token", "tokens matching a word", "tokens matching a regex"}
    with pytest.raises(ValueError, match="unknown preset 'middle'"):
        pick("middle")
    with pytest.raises(ValueError, match="empty"):
        pick("tokens matching a word", pattern="")


def test_global_tokens_follow_their_tokens_through_an_edit(embedded):
    old = embedded.tokenize(TEXT).tokens
    fees, budget = old.index("fees"), old.index("budget")
    edited = embedded.tokenize("Preface words first. " + TEXT.replace("monthly", "every single month")).tokens
    got, notes = presets.remap_positions((0, fees, budget), old, edited)
    assert [edited[p] for p in got] == ["[CLS]", "fees", "budget"]  # each token followed its place
    assert got[1] == fees + 4 and any("'fees' moved to" in n for n in notes)
    unrelated = embedded.tokenize("A different document about the weather and the sea.").tokens
    got, notes = presets.remap_positions((0, old.index("the"), 3000), old, unrelated)
    assert got == (0,)  # [CLS] stays; a common word is not matched across unrelated texts
    assert notes == ["1 'the' dropped: it is not in the new text", "3000 dropped: beyond the old text"]
    assert presets.remap_positions((), old, unrelated) == ((), [])
    from lfviz.samples import list_samples
    a, b = (embedded.tokenize(s.text).tokens for s in list_samples()[:2])
    got, notes = presets.remap_positions(range(0, len(a), 50), a, b)  # another sample: shared phrases do not count
    assert got == (0,) and len(notes) == len(range(50, len(a), 50))


def test_sweep_points_stay_inside_the_text():
    assert window_points(5000, 4) == [2, 4, 8, 16]
    assert window_points(100, 40) == [2, 4, 8, 16, 32, 64, 128]  # wider than 2n = 200 changes nothing
    assert window_points(0, 3) == [2]
    points = position_points(1000, 12)
    assert len(points) == 12 and points[0] == 1 and points[-1] < 999
    assert position_points(5, 12) == [1, 2, 3]  # only the inner tokens of a short text


def test_token_strip_values_follow_the_predictions(embedded):
    with_query = embedded.run(TEXT, config=lfviz.AttentionConfig(window=8), queries=["fees"], capture=False)
    scores, title = token_strip_values(with_query)
    assert scores == with_query.predictions.token_scores[0] and "'fees'" in title
    res = embedded.run(TEXT, config=lfviz.AttentionConfig(window=8), capture_layers=[2])
    res.predictions.token_scores = None  # a model that gives no per-token scores: attention received instead
    scores, title = token_strip_values(res)
    assert "received" in title and len(scores) == res.n
    assert scores == pytest.approx(received(res.capture.weights(2)).mean(0).tolist())


def test_received_equals_dense_column_sums(embedded):
    res = embedded.run(TEXT, config=lfviz.AttentionConfig(window=6, dilation=[1, 2, 1, 3, 1, 1],
                                                          global_tokens=(0, 4)))
    for layer in (0, 1, 3):
        w = res.capture.weights(layer)
        dense = weights_to_dense(w).float().sum(1)
        assert w.received is not None  # summed by the kernel during capture
        torch.testing.assert_close(received(w), dense, atol=1e-3, rtol=1e-3)
        from_band = dataclasses.replace(w, received=None)  # e.g. a run loaded from a file
        torch.testing.assert_close(received(from_band), dense, atol=1e-3, rtol=1e-3)


def test_changes_are_zero_for_the_same_run_and_positive_otherwise(embedded):
    a = embedded.run(TEXT, config=lfviz.AttentionConfig(window=8), output_hidden_states=True)
    b = embedded.run(TEXT, config=lfviz.AttentionConfig(window=8, global_tokens=(3,)), output_hidden_states=True)
    assert max(attention_change(a.capture, a.capture)) < 1e-6
    assert max(hidden_change(a.hidden_states, a.hidden_states)) < 1e-6
    att, hid = attention_change(a.capture, b.capture), hidden_change(a.hidden_states, b.hidden_states)
    assert len(att) == 6 and len(hid) == 7 and hid[0] < 1e-6  # embeddings do not depend on attention
    assert min(att) > 0 and hid[-1] > 0


def test_sweeps(embedded):
    cfg = lfviz.AttentionConfig(window=4)
    q = ["budget approval"]
    rows = sweep_global_position(embedded, TEXT, cfg, [1, 5, 9], "budget approval", queries=q)
    assert [r["position"] for r in rows] == [1, 5, 9] and all(isinstance(r["score"], float) for r in rows)
    assert len({round(r["score"], 6) for r in rows}) > 1  # where the global token sits matters
    moved = sweep_global_position(embedded, TEXT, cfg.replace(global_tokens=(0, 3)), [5, 9], "budget approval",
                                  queries=q, moving=3)  # token 3 moves; token 0 stays global
    direct = embedded.run(TEXT, config=cfg.replace(global_tokens=(0, 9)), queries=q, capture=False)
    assert moved[1]["score"] == pytest.approx(direct.predictions.summary()["budget approval"], abs=1e-6)
    with pytest.raises(ValueError, match="token 4 is not global"):
        sweep_global_position(embedded, TEXT, cfg, [5], "budget approval", queries=q, moving=4)
    seen = []
    rows = sweep_window(embedded, TEXT, cfg, [2, 8, 64], "budget approval", queries=q, progress=seen.append)
    assert [r["window"] for r in rows] == [2, 8, 64] and seen == pytest.approx([1 / 3, 2 / 3, 1])


def test_layer_chart_reads_in_model_order_and_keeps_noise_flat():
    fig = figs.layer_changes([0.2, 3e-6, 0.1], [0.0, 0.05, 2e-6, 0.01])
    assert list(fig.layout.xaxis.categoryarray) == ["emb", "L0", "L1", "L2"]  # the embeddings come first
    assert list(fig.data[1].x) == ["emb", "L0", "L1", "L2"] and list(fig.data[0].y)[1] == 0.0
    noise = figs.layer_changes([3e-6] * 3, [0.0, 1e-5, 2e-5, 1e-5])
    assert noise.layout.yaxis.range[1] == figs.MIN_SPAN["attention"] and max(noise.data[1].y) == 0.0
    assert noise.layout.yaxis2.range[1] == figs.MIN_SPAN["hidden"]


def test_window_sweeps_read_on_a_log_axis_against_the_current_score():
    rows = [{"window": w, "score": 0.1 * i} for i, w in enumerate([2, 8, 64, 512])]
    fig = figs.sweep_line(rows, "window", "q", reference=0.25)
    assert fig.layout.xaxis.type == "log" and fig.layout.shapes[0].y0 == 0.25
    assert "current configuration: 0.2500" in fig.layout.annotations[0].text
    assert figs.sweep_line([{"position": 3, "score": 0.1}], "position", "q").layout.xaxis.type == "linear"


def test_figures():
    fig = figs.token_strip(["a", "b", "c"], [0.1, 0.5, 0.2], (1,), "t")
    assert list(fig.data[0].x) == [0, 1, 2] and list(fig.data[0].marker.color) == [0, 1, 0]
    assert fig.data[0].marker.colorscale[-1][1] == figs.GLOBAL_COLOR
    assert fig.data[0].type == "scatter" and figs.token_strip(["x"] * 3000, [0] * 3000, (), "t").data[0].type == "scattergl"
    rows = lfviz.diff_predictions(lfviz.Predictions("similarity", [{"label": "a", "score": 0.5}]),
                                  lfviz.Predictions("similarity", [{"label": "a", "score": 0.7}]))
    bars = figs.prediction_bars(rows)
    assert list(bars.data[1].y) == [0.7] and bars.data[1].text[0] == "+0.200"
    assert len(figs.layer_changes([0.1, 0.2], [0, 0.1, 0.2]).data) == 2
