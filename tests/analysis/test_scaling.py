"""Scaling measurements (lfviz.analysis.scaling) and their figures, on the embedded model with tiny lengths.

No timing comparisons between methods: the machine is shared and timings are noise at these sizes."""
import math
import os

import pytest
import torch

from lfviz.analysis import peak_memory, scaling
from lfviz.config import AttentionConfig
from lfviz.figures.scaling import memory_figure, time_figure
from lfviz.analysis.patterns import layer_costs


def test_dense_path_equals_the_encoder_with_a_window_covering_the_text(embedded):
    n = 45
    ids = scaling.random_ids(n, embedded.config.vocab_size, embedded.config.pad_token_id)
    full = AttentionConfig(window=2 * n).resolve(embedded.num_layers, embedded.num_heads)
    with torch.inference_mode():
        dense = scaling.dense_forward(embedded.encoder, ids)
        banded = embedded.encoder(ids, full).last_hidden_state
    assert dense.shape == (n, embedded.config.hidden_size)
    torch.testing.assert_close(dense, banded, atol=1e-4, rtol=1e-4)


def test_random_ids_are_in_the_vocabulary_and_never_padding():
    ids = scaling.random_ids(5000, 50, pad_id=3)
    assert ids.shape == (5000,) and ids.min() >= 0 and ids.max() < 50
    assert not (ids == 3).any()
    assert torch.equal(ids, scaling.random_ids(5000, 50, pad_id=3))  # same ids for every method


def test_measure_runs_every_method_at_every_length(embedded):
    calls = []
    config = AttentionConfig(window=8, global_tokens=(0,))
    rows = scaling.measure(embedded, [32, 16], list(scaling.METHODS), config,
                           progress=lambda done, total, what: calls.append((done, total, what)))
    assert [(r["key"], r["tokens"]) for r in rows] == [(m, n) for n in (16, 32) for m in scaling.METHODS]
    assert {r["method"] for r in rows} == set(scaling.METHODS.values())
    for r in rows:
        assert r["seconds"] is not None and r["seconds"] > 0, r
        assert r["scores_mb"] > 0
        if os.path.exists("/proc/self/statm"):
            assert r["memory_mb"] is not None and r["memory_mb"] >= 0
    assert calls[-1][:2] == (8, 8) and [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert "Hugging Face" in " ".join(c[2] for c in calls)


def test_measure_leaves_the_shared_model_alone(embedded):
    before = (list(embedded.model.config.attention_window),
              [l.attention.self.one_sided_attn_window_size for l in embedded.model.encoder.layer])
    rows = scaling.measure(embedded, [16], ["hf"], AttentionConfig(window=8))
    assert rows[0]["seconds"] is not None
    after = (list(embedded.model.config.attention_window),
             [l.attention.self.one_sided_attn_window_size for l in embedded.model.encoder.layer])
    assert after == before and before[1][0] != 4


def test_points_that_cannot_run_get_a_note_instead_of_a_crash(embedded):
    too_long = embedded.max_tokens * 2
    rows = scaling.measure(embedded, [16, too_long], ["lfviz", "full"], AttentionConfig(window=8),
                           max_score_bytes=10**12)
    long_rows = [r for r in rows if r["tokens"] == too_long]
    assert all(r["seconds"] is None and "positions" in r["note"] for r in long_rows)

    rows = scaling.measure(embedded, [64], ["lfviz", "full"], AttentionConfig(window=8), max_score_bytes=100_000)
    by = {r["key"]: r for r in rows}
    assert by["full"]["seconds"] is None and "GiB" in by["full"]["note"]
    assert by["lfviz"]["seconds"] is not None  # 12 heads x 64 x 9 cells x 4 bytes fits under the limit

    uneven = AttentionConfig(window=(4, 6, 6, 6, 6, 6))  # HF needs every window to divide the largest
    (row,) = scaling.measure(embedded, [24], ["hf"], uneven)
    assert row["seconds"] is None and "divide" in row["note"]

    dilated = AttentionConfig(window=8, dilation=2, global_tokens=(40,))
    rows = scaling.measure(embedded, [16], ["lfviz", "hf"], dilated)
    assert all(r["seconds"] is not None for r in rows)
    assert "no dilation" in rows[1]["note"] and "global position" in rows[0]["note"]


def test_slow_methods_stop_before_the_longer_lengths(embedded):
    rows = scaling.measure(embedded, [16, 32], ["lfviz"], AttentionConfig(window=8), stop_after_s=0.0)
    assert rows[0]["seconds"] is not None
    assert rows[1]["seconds"] is None and "previous length" in rows[1]["note"]


def test_measure_rejects_bad_requests(embedded):
    with pytest.raises(ValueError, match="choose from"):
        scaling.measure(embedded, [16], ["flash"])
    with pytest.raises(ValueError, match="positive"):
        scaling.measure(embedded, [0, 16], ["lfviz"])
    with pytest.raises(ValueError, match="repeats"):
        scaling.measure(embedded, [16], ["lfviz"], repeats=0)


def test_score_sizes_agree_with_the_pattern_costs():
    spec = AttentionConfig(window=16).resolve(1, 4)[0]
    for n, g in ((50, ()), (64, (0, 9))):
        lf = layer_costs(spec, n, 4, g)
        assert scaling.score_bytes("lfviz", n, 4, (16,), len(g)) == lf[0].score_bytes
        assert scaling.score_bytes("full", n, 4, (16,), len(g)) == lf[1].score_bytes
    assert scaling.score_bytes("hf", 50, 4, (16,), 0) == 4 * 4 * 64 * 17  # rows padded to a multiple of 16


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS sampling needs /proc")
def test_peak_memory_sees_a_large_temporary():
    with peak_memory.PeakMemory(torch.device("cpu")) as probe:
        x = torch.ones(64 * 2**20)  # 64 Mi floats = 256 MiB, written page by page
        del x
    assert probe.grown_mb > 128
    with peak_memory.PeakMemory(torch.device("cpu")) as idle:
        pass
    assert idle.grown_mb < 32


def test_growth_exponent_reads_the_log_log_slope():
    rows = [dict(method="quad", tokens=n, seconds=1e-6 * n * n) for n in (100, 200, 400)]
    rows += [dict(method="lin", tokens=n, seconds=1e-3 * n) for n in (100, 200)]
    rows += [dict(method="skipped", tokens=100, seconds=None)]
    rows += [dict(method="late", tokens=n, seconds=t) for n, t in ((10, 5.0), (100, 1.0), (200, 2.0), (400, 4.0))]
    k = scaling.growth_exponents(rows)
    assert math.isclose(k["quad"], 2.0) and math.isclose(k["lin"], 1.0) and "skipped" not in k
    assert math.isclose(k["late"], 1.0)  # only the three longest lengths count


ROWS = [
    dict(method="A", key="lfviz", tokens=256, seconds=0.1, memory_mb=5.0, scores_mb=6.0, note=""),
    dict(method="A", key="lfviz", tokens=512, seconds=0.2, memory_mb=0.0, scores_mb=12.0, note=""),
    dict(method="B", key="full", tokens=256, seconds=0.05, memory_mb=3.0, scores_mb=3.0, note=""),
    dict(method="B", key="full", tokens=512, seconds=None, memory_mb=None, scores_mb=12.0, note="too big"),
]


def test_time_figure_is_log_log_with_one_line_per_method():
    fig = time_figure(ROWS)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert [t.name for t in fig.data] == ["A", "B"]
    assert list(fig.data[0].x) == [256, 512] and list(fig.data[0].y) == [0.1, 0.2]
    assert list(fig.data[1].x) == [256]  # the skipped point is left out
    assert fig.data[0].line.color != fig.data[1].line.color
    assert list(fig.layout.xaxis.tickvals) == [256, 512]


def test_memory_figure_shows_measured_and_scores_per_method():
    fig = memory_figure(ROWS)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert [t.name for t in fig.data] == ["A: measured", "A: scores, one layer", "B: measured",
                                          "B: scores, one layer"]
    assert list(fig.data[0].x) == [256]  # 0 MB cannot sit on a log axis
    assert list(fig.data[1].y) == [6.0, 12.0] and fig.data[1].line.dash == "dot"
    assert fig.data[0].line.color == fig.data[1].line.color


def test_short_points_run_again_and_the_fastest_run_is_kept(embedded):
    config = AttentionConfig(window=8)
    (quick,) = scaling.measure(embedded, [16], ["full"], config, min_point_s=60.0)
    assert quick["runs"] == scaling.MAX_RUNS
    (exact,) = scaling.measure(embedded, [16], ["full"], config, repeats=3, min_point_s=0.0)
    assert exact["runs"] == 3 and exact["seconds"] > 0


def test_a_method_that_fails_becomes_a_note_and_the_others_still_run(embedded, monkeypatch):
    def out_of_memory(encoder, ids):
        raise RuntimeError("CUDA out of memory. Tried to allocate 12 GiB\nmore details")

    monkeypatch.setattr(scaling, "dense_forward", out_of_memory)
    rows = scaling.measure(embedded, [16, 32], ["lfviz", "full"], AttentionConfig(window=8))
    full = [r for r in rows if r["key"] == "full"]
    assert all(r["seconds"] is None and r["note"] == "failed: CUDA out of memory. Tried to allocate 12 GiB"
               for r in full)
    assert all(r["seconds"] > 0 for r in rows if r["key"] == "lfviz")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_measure_on_cuda_reports_allocated_memory():
    import lfviz

    runner = lfviz.load_runner("embedded", device="cuda")
    rows = scaling.measure(runner, [256, 512], ["lfviz", "full", "hf"], AttentionConfig(window=64))
    assert all(r["seconds"] > 0 and r["memory_mb"] > 0 for r in rows), rows
    assert "GPU" in peak_memory.memory_meaning(runner.device)


def test_crossover_where_lfviz_starts_to_beat_full_attention():
    def rows(pairs):
        return [dict(key=k, method=scaling.METHODS[k], tokens=n, seconds=t) for n, a, b in pairs
                for k, t in (("lfviz", a), ("full", b))]

    measured = rows([(256, 0.2, 0.1), (1024, 0.4, 0.3), (2048, 0.6, 0.9), (4096, 1.1, 3.5)])
    cross = scaling.crossover(measured)
    assert 1024 < cross["tokens"] < 2048 and cross["below"] is None
    # log-log interpolation: ratio 4/3 at 1024 and 2/3 at 2048 cross at 1024 * 2 ** (log(4/3) / log(2))
    assert cross["tokens"] == round(1024 * 2 ** (math.log(4 / 3) / math.log(2)))
    assert scaling.crossover(rows([(256, 0.1, 0.2), (512, 0.2, 0.5)])) == {"tokens": None, "below": True}
    assert scaling.crossover(rows([(256, 0.3, 0.2), (512, 0.6, 0.5)])) == {"tokens": None, "below": False}
    assert scaling.crossover([]) == {"tokens": None, "below": None}
    fig = time_figure(measured, cross["tokens"])
    assert fig.layout.shapes[0].x0 == cross["tokens"] and "lfviz faster from ~1,365 tokens" in fig.layout.annotations[0].text
    assert fig.layout.annotations[0].x == pytest.approx(math.log10(cross["tokens"]))  # log axis: annotations in log10
    assert not time_figure(measured).layout.shapes
