"""Longformer vs BigBird vs LSH on the same weights (`analysis.pattern_runs`): equal-budget sizing gives about the
same keys per query; every run is measured against full attention; the picture of a layer is a mean attention per
cell whose rows sum to 1; the picture from the generic path equals one pooled from a dense computation."""
import numpy as np
import pytest
import torch

from lfviz.analysis.pattern_runs import equal_budget, longformer_keys, run_patterns
from lfviz.attention import sparse
from lfviz.attention.sparse import BigBirdPattern, attention_pattern
from lfviz.config import AttentionConfig

TEXT = "The board approved the budget for the new bridge. The mayor objected to the cost of it. " * 24


@pytest.mark.parametrize("window, n", [(64, 500), (256, 4000), (512, 1405), (32, 120)])
def test_equal_budget_sizes_both_patterns_to_the_longformer_keys(window, n):
    cfg = AttentionConfig(window=window, global_tokens=(0,))
    keys = longformer_keys(cfg, n)
    bb, ls = equal_budget(cfg, n)
    assert n >= (5 + 2 * bb.num_random) * bb.block  # still block-sparse
    assert 0.6 * keys <= (5 + bb.num_random) * bb.block <= 1.4 * keys or bb.block == 1
    assert 0.6 * keys <= 2 * ls.num_hashes * ls.chunk <= 1.4 * keys
    assert ls.num_buckets % 2 == 0 and ls.num_buckets & (ls.num_buckets - 1) == 0


def test_three_patterns_run_and_are_measured(embedded):
    cfg = AttentionConfig(window=32, global_tokens=(0,))
    runs = run_patterns(embedded, TEXT, cfg, layer=1, cells=64)
    assert [r.name for r in runs] == ["Longformer", "BigBird", "Reformer LSH"]
    keys = runs[0].keys_per_query
    for r in runs:
        assert r.gap > 0 and r.seconds > 0 and r.picture.shape == (12, 64, 64)
        np.testing.assert_allclose(r.picture.sum(-1), 1, atol=1e-4)  # each query cell's mean row sums to 1
    assert all(0.6 * keys <= r.keys_per_query <= 1.4 * keys for r in runs[1:])
    assert runs[2].buckets.shape[:2] == (12, 2) and runs[1].buckets is None
    assert "training mode" in runs[1].note and "shared query/key" in runs[2].note


def test_the_picture_is_the_pooled_dense_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 40, 8, generator=g) for _ in range(3))
    pattern = BigBirdPattern(block=4, num_random=1)
    with attention_pattern(pattern, picture_layer=0, cells=10) as found:
        sparse.run_active(0, q, k, v)
    counts = pattern.rows(0, k)(0, 40).float()
    probs = torch.softmax(q @ k.transpose(1, 2) / 8 ** 0.5 + counts.log(), -1)  # (2, 40, 40)
    want = probs.view(2, 10, 4, 10, 4).sum(-1).mean(2)  # mean over a cell's queries of the mass per key cell
    torch.testing.assert_close(found["picture"], want, atol=1e-5, rtol=0)
    assert found["keys_per_query"] == (counts > 0).sum().item() / 80
