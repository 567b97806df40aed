import numpy as np
import pytest
import torch

from lfviz.config import AttentionConfig, LayerSpec
from lfviz.attention.mask import dense_mask
from lfviz.analysis import patterns


@pytest.mark.parametrize("spec, n, g", [(LayerSpec(4, (1,)), 30, ()), (LayerSpec(6, (3,)), 41, (0, 40)),
                                         (LayerSpec(64, (1,)), 10, (5,)), (LayerSpec(2, (2,)), 9, tuple(range(9)))])
def test_pattern_pairs_equal_the_mask_predicate(spec, n, g):
    rows, cols = patterns.longformer_pairs(spec, n, g)
    got = np.zeros((n, n), dtype=bool)
    got[rows, cols] = True
    assert len(rows) == got.sum()  # each pair once
    assert np.array_equal(got, dense_mask(spec, n, g)[0].numpy())


def test_density_is_exact_when_not_downsampled_and_a_mean_when_it_is():
    spec, n = LayerSpec(4, (1,)), 64
    rows, cols = patterns.longformer_pairs(spec, n, (0,))
    full = patterns.density(rows, cols, n, cells=64)
    assert np.array_equal(full, dense_mask(spec, n, (0,))[0].numpy().astype(float))
    small = patterns.density(rows, cols, n, cells=16)
    assert small.shape == (16, 16)
    assert np.isclose(small.mean(), full.mean())


def test_bigbird_pattern():
    n, b = 1024, 64
    blocks = patterns.bigbird_blocks(n, b, 3)
    nb = n // b
    assert blocks[0] == list(range(nb)) and blocks[-1] == list(range(nb))
    for i in range(1, nb - 1):
        assert {0, nb - 1, i - 1, i, i + 1} <= set(blocks[i]) and len(blocks[i]) <= 8
    with pytest.raises(ValueError, match="at least 704 tokens"):
        patterns.bigbird_blocks(700)


def test_layer_costs_order():
    costs = {c.name: c for c in patterns.layer_costs(LayerSpec(512, (1,) * 12), 4096, 12, (0,))}
    assert costs["full"].pairs == 4096 ** 2
    assert costs["Longformer"].pairs < costs["BigBird"].pairs < costs["full"].pairs
    assert costs["Longformer"].score_bytes < costs["full"].score_bytes
    assert "BigBird" not in {c.name for c in patterns.layer_costs(LayerSpec(8, (1,)), 100, 1)}


def reach_by_matrix_powers(specs, n, global_tokens, source, causal=False):
    """Plain reference: token i holds the source's information after a layer if it attends (any head, the mask
    predicate) a token that held it before."""
    reached = np.zeros(n, dtype=bool)
    reached[source] = True
    out = [reached]
    for spec in specs:
        attends = dense_mask(spec, n, global_tokens, causal=causal).any(0).numpy()  # (n, n), any head
        reached = reached | (attends.astype(int) @ reached.astype(int) > 0)
        out.append(reached)
    return out


@pytest.mark.parametrize("window, dilation, global_tokens, n, source", [
    (8, [1, 1], (), 40, 20),
    (4, [2, [1, 3]], (), 50, 7),
    (6, [3, 1], (0,), 61, 30),          # the CLS case: {0} and a band, with a gap between
    (2, [[1, 4, 2], 5], (13, 44), 57, 50),
    (100, [1, 1], (), 9, 4),            # window wider than the text
    (4, [7, 7], (), 30, 29),
])
@pytest.mark.parametrize("causal", [False, True])
def test_reach_sets_equal_matrix_powers_of_the_mask(window, dilation, global_tokens, n, source, causal):
    H = max(len(d) if isinstance(d, list) else 1 for d in dilation)
    specs = AttentionConfig(window=window, dilation=dilation).resolve(len(dilation), H)
    got = patterns.reach_sets(specs, n, global_tokens, source, causal)
    want = reach_by_matrix_powers(specs, n, global_tokens, source, causal)
    assert [g.tolist() for g in got] == [w.tolist() for w in want]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window, dilation, global_tokens, n", [(8, (1,), (), 30), (6, (3,), (0, 17), 41),
                                                                (100, (2,), (5,), 20)])
def test_longformer_pairs_are_the_mask(window, dilation, global_tokens, n, causal):
    spec = LayerSpec(window, dilation)
    rows, cols = patterns.longformer_pairs(spec, n, global_tokens, causal=causal)
    dense = np.zeros((n, n), dtype=bool)
    dense[rows, cols] = True
    assert len(rows) == dense.sum()  # each pair once
    assert (dense == dense_mask(spec, n, global_tokens, causal=causal)[0].numpy()).all()


def test_runs_and_the_reached_set_after_one_layer_with_a_global_token():
    specs = AttentionConfig(window=512).resolve(2, 1)
    sets = patterns.reach_sets(specs, 2300, (0,), 1960)
    assert patterns.runs(sets[1]) == [(0, 0), (1704, 2216)]  # not a band from 0 to 2216
    assert patterns.runs(sets[2]) == [(0, 2299)]
    assert patterns.runs(np.array([1, 1, 0, 1, 0, 0, 1], dtype=bool)) == [(0, 1), (3, 3), (6, 6)]
    assert patterns.describe_reach([(0, 0), (1704, 2216)], 2300) == "514 of 2,300 positions (22%) in 2 runs: 0, 1704–2216"


def test_reach_grows_by_span_and_globals_connect_everything():
    specs = AttentionConfig(window=8, dilation=[1, 2, 1]).resolve(3, 2)
    assert patterns.reach(specs, 200, source=100) == [(96, 104), (88, 112), (84, 116)]
    with_global = patterns.reach(specs, 200, global_tokens=(0,), source=100)
    assert with_global[0] == (0, 104)  # the global token attends everything at layer 1
    assert with_global[1] == (0, 199)  # and everyone attends it at layer 2
    with pytest.raises(ValueError, match="out of range"):
        patterns.reach(specs, 10, source=10)


@pytest.mark.parametrize("n, cells", [(10, 3), (1003, 100), (300, 7)])
def test_density_of_full_attention_is_one_everywhere(n, cells):
    d = patterns.density(*patterns.full_pairs(n), n, cells)
    assert np.allclose(d, 1.0)


@pytest.mark.parametrize("n", [704, 1000, 4100])
def test_bigbird_cost_counts_exactly_the_listed_pairs(n):
    costs = {c.name: c for c in patterns.layer_costs(LayerSpec(8, (1,)), n, 1)}
    assert costs["BigBird"].pairs == len(patterns.bigbird_pairs(n)[0])
