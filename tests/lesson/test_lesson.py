"""The lesson's steps on the embedded model and short texts: each step's number equals what the analysis its
full page runs gives for the same configuration; steps that need another model say which; the handout is one
offline file with every step."""
import math
from html.parser import HTMLParser

import numpy as np
import pytest

from lfviz.analysis import advisor, fidelity, pattern_runs, patterns
from lfviz.config import AttentionConfig, LayerSpec
from lfviz.lesson import LessonConfig, build_lesson, compute_step
from lfviz.lesson.core import cut_text
from lfviz.lesson.handout import handout_html
from lfviz.lesson.steps import STEPS, dilation_text, ramp
from lfviz.samples import get_sample
from lfviz.textspec import parse_dilation

TINY = LessonConfig(window=16, pair_lengths=(256, 1024), time_lengths=(64, 128), max_tokens=96, advisor_size=3)


@pytest.fixture(scope="module")
def text():
    return get_sample("article").text[:1500]  # ~300 tokens


def test_cost_is_the_pattern_pages_pair_count(embedded, text):
    s = compute_step(1, embedded, text, TINY)
    n = len(embedded.tokenize(text).input_ids)
    c = {x.name: x for x in patterns.layer_costs(LayerSpec(16, (1,) * embedded.num_heads), n, embedded.num_heads)}
    assert s.value == c["full"].pairs / c["Longformer"].pairs  # on this document, as the Pattern page counts
    assert f"document's {n:,} tokens" in s.value_text
    assert list(s.figure.data[0].y) == [256**2, 1024**2]  # full attention: n² pairs
    assert any("measured now" in d and "128 tokens" in d for d in s.details)
    assert s.page == "pages/pattern.py" and s.params["window"] == "16"


def test_receptive_field_is_reach_sets(embedded, text):
    s = compute_step(2, embedded, text, TINY)
    n = len(embedded.tokenize(text).input_ids)
    specs = AttentionConfig(window=16).resolve(embedded.num_layers, embedded.num_heads)
    assert s.value == int(patterns.reach_sets(specs, n, (), n // 2)[-1].sum())
    assert s.value == min(n, 1 + 2 * 8 * embedded.num_layers)  # 8 tokens each way per layer
    s5 = compute_step(2, embedded, text, LessonConfig(window=16, source=5))
    assert "token 5's" in s5.value_text


def test_dilation_widens_the_span(embedded, text):
    L, H = embedded.num_layers, embedded.num_heads
    assert dilation_text(L, H, 3).split(";")[0] == "1" and dilation_text(L, H, 3).split(";")[-1].endswith("3,3")
    s = compute_step(3, embedded, text, TINY)
    n = len(embedded.tokenize(text).input_ids)
    first = L // 2 + 1
    a = patterns.reach_sets(AttentionConfig(window=16).resolve(L, H), n, (), n // 2)[first]
    b = patterns.reach_sets(AttentionConfig(window=16, dilation=parse_dilation(s.params["dilation"])).resolve(L, H),
                            n, (), n // 2)[first]
    span = lambda m: np.flatnonzero(m)[-1] - np.flatnonzero(m)[0] + 1
    assert s.value == span(b) / span(a) and s.value > 1


def test_global_token_step_is_the_advisors_gain(embedded, text):
    s = compute_step(4, embedded, text, TINY)
    short = cut_text(embedded, text, TINY.max_tokens)
    advice = advisor.advise(embedded, short, AttentionConfig(window=16), k=1, size=3, compare_presets=False)
    assert s.params["global"] == ",".join(map(str, advice.positions))
    assert s.value == pytest.approx(1 - advice.gap / advice.base_gap, abs=1e-6)
    assert s.page == "pages/fidelity.py" and len(s.figure.data) == 2
    assert "first 9" in s.note and "whole document" in s.note  # it says the full page measures more


def test_ramp_spends_the_same_keys():
    assert ramp(64, 6) == (32, 44, 58, 70, 84, 96) and sum(ramp(64, 6)) == 6 * 64
    assert all(w % 2 == 0 for w in ramp(50, 5)) and sum(ramp(50, 5)) == 250


def test_windows_per_layer_gap_ratio(embedded, text):
    s = compute_step(5, embedded, text, TINY)
    short = cut_text(embedded, text, TINY.max_tokens)
    full = embedded.run(short, config=fidelity.full_attention(200), capture=False, output_hidden_states=True)
    g = [fidelity.gap(full, embedded.run(short, config=c, capture=False))
         for c in (AttentionConfig(window=16), AttentionConfig(window=ramp(16, embedded.num_layers)))]
    assert s.value == pytest.approx(g[1] / g[0], rel=1e-5)
    assert s.params["window"] == ",".join(map(str, ramp(16, embedded.num_layers)))


def test_three_patterns_are_the_pattern_runs(embedded, text):
    s = compute_step(6, embedded, text, TINY)
    runs = pattern_runs.run_patterns(embedded, cut_text(embedded, text, 96), AttentionConfig(window=16), cells=64)
    assert s.value == pytest.approx(runs[0].gap, abs=1e-6)
    assert [b for b in s.figure.data[0].x] == [r.name for r in runs if not math.isnan(r.gap)]


def test_causal_steps_say_which_model_to_load(embedded, text):
    steps = build_lesson(embedded, text, TINY, steps=(7, 8))
    assert [(s.number, s.needs, s.figure, s.value) for s in steps] == [(7, "smollm2", None, None),
                                                                       (8, "gemma3-270m", None, None)]
    assert steps[0].params["model"] == "smollm2" and steps[1].params["sample"] == "copy_test"


def test_sinks_on_a_causal_model(tiny_causal, text):
    s = compute_step(7, tiny_causal, text, TINY, model_key="tiny")
    short = cut_text(tiny_causal, text, TINY.max_tokens)
    sinks = tiny_causal.run(short, config=AttentionConfig(window=16, global_tokens=(0, 1, 2, 3)), capture=False)
    assert s.needs is None and s.value == pytest.approx(sinks.predictions.summary()["perplexity"])
    assert list(s.figure.data[0].x) == ["window alone", "window + 4 sinks", "full attention"]


def test_interleaved_layers_on_a_tiny_gemma3(tiny_gemma3):
    s = compute_step(8, tiny_gemma3, "", TINY)
    assert s.needs is None and s.value > 0 and s.figure is not None
    assert s.details[0].startswith("native") and any("slide" in d for d in s.details[1:])


def test_a_step_out_of_range_is_refused(embedded):
    with pytest.raises(ValueError, match="choose 1 to 8"):
        compute_step(9, embedded, "text")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls, self.scripts = [], 0

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


def test_handout_is_offline_and_has_every_step(embedded, text):
    steps = build_lesson(embedded, text, TINY, steps=(2, 3, 7))
    html = handout_html(steps, "<b>model</b>", "<script>alert(1)</script>")
    links = _Links()
    links.feed(html)
    assert not [u for u in links.urls if u.startswith(("http:", "https:", "//"))]
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    for s in steps:
        assert s.title in html or s.title.replace("'", "&#x27;") in html
    assert html.count("plotly.js v") >= 1 and "cdn.plot.ly" not in html.split("<body>")[1][:2000]
    assert "needs a causal language model" in html


def test_every_step_has_a_title_claim_and_page():
    assert [s.number for s in STEPS] == list(range(1, 9))
    assert all(s.title and s.claim and s.page.startswith("pages/") for s in STEPS)


def test_cli_writes_the_handout(tmp_path, capsys):
    from lfviz.cli import main

    out = tmp_path / "lesson.html"
    assert main(["lesson", "--steps", "2,3", "--window", "16", "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "Step 2. The sliding window" in html and "Step 3. Dilation" in html and "Step 1." not in html
    assert "step 2 (" in capsys.readouterr().out
    assert main(["lesson", "--window", "15", "-o", str(out)]) == 2
    assert "even two-sided window" in capsys.readouterr().err


def test_a_step_that_cannot_run_says_why_and_the_others_still_show(embedded):
    from dataclasses import replace

    steps = build_lesson(embedded, "One short sentence.", replace(TINY, k=10), steps=(2, 4))
    assert steps[0].value is not None
    assert steps[1].value is None and steps[1].note.startswith("This step could not run")
    assert "ask for 1 to" in steps[1].note  # the advisor's own message: what to change


def test_a_timing_against_the_claim_is_explained(embedded, text, monkeypatch):
    from lfviz.lesson import steps

    rows = [{"key": "lfviz", "method": "lfviz", "tokens": 128, "seconds": 0.5, "note": ""},
            {"key": "full", "method": "full attention (dense SDPA)", "tokens": 128, "seconds": 0.2, "note": ""}]
    monkeypatch.setattr(steps.scaling, "measure", lambda *a, **k: rows)
    s = compute_step(1, embedded, text, TINY)
    assert any("the window is not faster yet" in d for d in s.details)
    rows[0]["seconds"] = 0.1
    assert not any("not faster" in d for d in compute_step(1, embedded, text, TINY).details)


def test_the_ramp_says_whether_it_ends_closer(embedded, text):
    s = compute_step(5, embedded, text, TINY)
    word = "closer to" if s.value < 0.995 else "further from" if s.value > 1.005 else "as far from"
    assert f"the ramp ends {word} full attention" in s.value_text and "pooled-embedding cosine" in s.value_text
