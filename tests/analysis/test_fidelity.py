"""Fidelity to full attention: exact at full attention, what the window loses by key against the dense
probabilities and the mask predicate, and the advisor's numbers re-measured."""
import math

import numpy as np
import pytest
import torch

from lfviz.analysis import advisor, fidelity
from lfviz.analysis.patterns import reach_sets
from lfviz.attention.layout import weights_to_dense
from lfviz.attention.mask import dense_mask
from lfviz.config import AttentionConfig, LayerSpec

TEXT = ("The harbour keeper lit the lamp at dusk. Ships came in from the north. The keeper wrote each name in "
        "the log, and the log went to the town hall every spring. Nobody read it until the flood. ") * 3


def test_full_attention_is_perfect_fidelity(embedded):
    full = embedded.run(TEXT, config=fidelity.full_attention(10_000), capture=False, output_hidden_states=True)
    n = full.n
    for cfg in (fidelity.full_attention(n), AttentionConfig(window=4 * n, global_tokens=(0, 7))):
        run = embedded.run(TEXT, config=cfg, capture=False, output_hidden_states=True)
        f = fidelity.measure(full, run)
        assert f.objective == "embedding" and abs(f.gap) < 1e-5
        assert max(f.per_layer) < 1e-5 and max(f.per_token) < 1e-5 and len(f.per_layer) == embedded.num_layers + 1
        assert f.document["pooled-embedding cosine"] == pytest.approx(1, abs=1e-5)
    narrow = embedded.run(TEXT, config=AttentionConfig(window=8), capture=False, output_hidden_states=True)
    f = fidelity.measure(full, narrow)
    assert f.gap > 1e-3 and f.per_layer[0] < 1e-6 and f.per_layer[-1] > 1e-3  # embeddings do not attend
    assert max(f.per_token) == pytest.approx(f.per_token[fidelity.blind_spots(f, 1)[0]])


def test_full_causal_attention_is_perfect_fidelity(tiny_causal):
    full = tiny_causal.run(TEXT, config=fidelity.full_attention(1024), capture=False, output_hidden_states=True)
    same = fidelity.measure(full, tiny_causal.run(TEXT, config=AttentionConfig(window=2048), capture=False,
                                                  output_hidden_states=True))
    assert same.objective == "perplexity" and abs(same.gap) < 1e-5 and max(same.per_layer) < 1e-5
    assert math.isnan(same.per_token[0]) and max(abs(x) for x in same.per_token[1:]) < 1e-5
    sinks = tiny_causal.run(TEXT, config=AttentionConfig(window=4, global_tokens=(0, 1)), capture=False,
                            output_hidden_states=True)
    f = fidelity.measure(full, sinks)
    assert f.gap == pytest.approx(f.document["perplexity ratio"] - 1) and f.gap != 0
    assert f.per_token[1:3] == pytest.approx([0, 0], abs=1e-5)  # tokens 1, 2 see all before them anyway


def test_objectives_say_what_to_fix(embedded):
    run = embedded.run(TEXT, capture=False)
    with pytest.raises(ValueError, match="causal language model"):
        fidelity.gap(run, run, "perplexity")
    with pytest.raises(ValueError, match="no prediction 'x'"):
        fidelity.gap(run, run, "prediction", "x")
    with pytest.raises(ValueError, match="unknown objective"):
        fidelity.gap(run, run, "closeness")
    q = embedded.run(TEXT, queries=["flood"], capture=False)
    assert fidelity.gap(q, q, "prediction", q.predictions.rows[0]["label"]) == 0


def _far_by_dense(runner, text, config, causal):
    """The same quantity from the captured full-attention probabilities and the mask predicate."""
    full = runner.run(text, config=fidelity.full_attention(10_000), capture=True)
    n = full.n
    specs = config.resolve(runner.num_layers, runner.num_heads)
    total = torch.zeros(n, dtype=torch.float64)
    for layer in full.capture.captured_layers:
        probs = weights_to_dense(full.capture.weights(layer)).double()  # (H, n, n)
        near = dense_mask(specs[layer], n, causal=causal)
        total += (probs * ~near).sum((0, 1)) / probs.shape[0]
    return total.numpy()


@pytest.mark.parametrize("dilated", [False, True])
def test_attention_from_afar_equals_the_dense_probabilities_outside_the_pattern(embedded, tiny_causal, dilated):
    for runner, causal in ((embedded, False), (tiny_causal, True)):
        L, H = runner.num_layers, runner.num_heads
        config = (AttentionConfig(window=[4, 16] * (L // 2), dilation=[1, [1, 2, 2, 3] * (H // 4)] * (L // 2))
                  if dilated else AttentionConfig(window=8))
        full, far = fidelity.attention_from_afar(runner, TEXT, config)
        assert full.hidden_states is not None and far.shape == (full.n,)
        np.testing.assert_allclose(far, _far_by_dense(runner, TEXT, config, causal), atol=1e-4)
        assert far.max() > 0.01
        if causal:
            assert far[-1] == pytest.approx(0, abs=1e-6)  # nothing comes after the last token


def _matrix_powers(specs, n, global_tokens, target, causal):
    """Which tokens can reach `target` by each layer: boolean powers of the attend relation (query row i attends
    key j: j's information reaches i)."""
    reached = np.zeros(n, bool)
    reached[target] = True
    out = [reached.copy()]
    for spec in specs:
        m = dense_mask(spec, n, global_tokens, causal=causal).any(0).numpy()  # (n, n) some head attends
        reached = reached | m[reached].any(0)
        out.append(reached.copy())
    return out


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("globals_", [(), (3,), (0, 20)])
def test_what_reaches_a_token_equals_matrix_powers(causal, globals_):
    specs = (LayerSpec(4, (1, 2)), LayerSpec(2, (3, 1)), LayerSpec(6, (1, 1)))
    for target in (0, 11, 29):
        got = reach_sets(specs, 30, globals_, target, causal, backward=True)
        want = _matrix_powers(specs, 30, globals_, target, causal)
        assert all((a == b).all() for a, b in zip(got, want)), (target, causal, globals_)


@pytest.mark.parametrize("which", ["encoder", "causal"])
def test_advisor_numbers_are_measured_runs(embedded, tiny_causal, which):
    runner = embedded if which == "encoder" else tiny_causal
    cfg = AttentionConfig(window=8)
    seen = []
    advice = advisor.advise(runner, TEXT, cfg, 3, size=6, progress=lambda f, what: seen.append(f))
    assert seen[-1] == 1.0 and advice.runs >= 1 + 6 and advice.objective == fidelity.default_objective(
        runner.run(TEXT, capture=False))
    full = runner.run(TEXT, config=fidelity.full_attention(10_000), capture=False)
    remeasure = lambda positions: fidelity.gap(full, runner.run(TEXT, config=cfg.replace(global_tokens=positions),
                                                                capture=False))
    assert advice.base_gap == pytest.approx(remeasure(()), abs=1e-6)
    end = 0
    for i, pick in enumerate(advice.picks):  # each pick's gap: the run with the picks up to the end of its step
        if i == end:
            end = i + pick.measured_with  # picks measured together (a step, the fill) share one run's gap
        assert pick.gap == pytest.approx(remeasure(tuple(sorted(p.position for p in advice.picks[:end]))), abs=1e-6)
        assert pick.gain >= 0
        assert pick.position in dict(advice.shortlist) or pick.reason.startswith(advisor.FILLED)  # the last step
    assert advice.greedy_gap <= advice.base_gap and advice.config.global_tokens == advice.positions
    table = advice.table()
    assert table["gap"].is_monotonic_increasing and set(table["strategy"]) >= {advisor.GREEDY, "no global tokens",
                                                                                "first k tokens", "evenly spaced"}
    best = table[table["strategy"] != "no global tokens"].iloc[0]  # the recommendation: the best measured row
    assert table["recommended"].sum() == 1 and table[table["recommended"]].iloc[0]["gap"] == best["gap"]
    assert advice.gap == best["gap"] and advice.positions == tuple(best["positions"])
    for row in table.itertuples():
        assert row.gap == pytest.approx(remeasure(tuple(row.positions)), abs=1e-6)


def test_advisor_asks_for_a_budget_the_text_allows(embedded):
    with pytest.raises(ValueError, match="ask for 1 to"):
        advisor.advise(embedded, "a short text", AttentionConfig(window=4), 50)


def test_shortlist_spreads_far_keys_and_keeps_the_reasons():
    far = np.zeros(40)
    far[[10, 11, 12, 30]] = [5, 4.9, 4.8, 3]
    tokens = ["[CLS]"] + ["w"] * 38 + ["[SEP]"]
    picks = dict(advisor.shortlist(far, tokens, None, None, [5], AttentionConfig(window=16), 8))
    assert picks[10] == advisor.FAR and 11 not in list(picks)[:2]  # neighbours of a top key wait their turn
    assert picks[0] == advisor.FIRST and picks[5] == advisor.QUESTION
    assert sorted(picks) == [0, 1, 5, 10, 11, 12, 20, 30]  # 1: the first sentence; 20: spread; no more from afar
    sinks = dict(advisor.shortlist(far, tokens, None, None, [5], AttentionConfig(window=16), 11, first=4))
    assert [sinks[p] for p in range(4)] == [advisor.FIRST] * 4  # sinks work as a group: all on the list


def test_budget_presets_use_k_tokens():
    tokens = [f"t{i}" for i in range(100)]
    assert advisor.budget_preset("evenly spaced", tokens, None, None, (), 4) == (0, 25, 50, 75)
    assert advisor.budget_preset("first k tokens", tokens, None, None, (), 3) == (0, 1, 2)
    assert advisor.budget_preset("question tokens", tokens, None, None, (7, 3, 9), 2) == (3, 7)
