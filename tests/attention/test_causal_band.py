"""The causal band kernel (`causal_band.py`, through `banded_attention(causal=True)` on the CPU) equals the dense
reference built from the mask predicate, with grouped-query heads given unrepeated: windows narrower and wider
than the text (full causal attention), sinks (global tokens), learned sink logits, soft-capping, one dilation for
every head, padding, block sizes that leave partial blocks and chunks of several blocks."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from lfviz.analysis.headstats import received
from lfviz.attention import causal_band as kernel
from lfviz.attention.banded import banded_attention
from lfviz.attention.layout import weights_from_dense
from lfviz.attention.reference import reference_attention
from lfviz.config import LayerSpec

TOL = 1e-4


def check(n, window, d=1, heads=4, kv_heads=2, global_tokens=(), n_pad=0, block=None, softcap=None, sinks=False,
          seed=0, hd=8):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(heads, n, hd, generator=g)
    k, v = (torch.randn(kv_heads, n, hd, generator=g) * 2 for _ in range(2))
    learned = torch.randn(heads, generator=g) if sinks else None
    valid = torch.ones(n, dtype=torch.bool)
    if n_pad:
        valid[n - n_pad:] = False
    spec = LayerSpec(window, (d,) * heads)
    gt = tuple(sorted(global_tokens))
    kw = dict(causal=True, softcap=softcap, sinks=learned)
    out, w = banded_attention(q, k, v, spec, gt, valid if n_pad else None, q[:, list(gt)], k, v, need_weights=True,
                              block=block, impl="blocked", **kw)
    each = lambda x: x.repeat_interleave(heads // kv_heads, dim=0)  # the reference: one kv head per query head
    ref_out, ref_probs = reference_attention(q, each(k), each(v), q, each(k), each(v), spec, gt, valid, **kw)
    ref = weights_from_dense(ref_probs, spec.for_length(n).window, spec.dilation, gt)
    assert w.causal and w.stored.shape == (heads, n, spec.for_length(n).one_sided + 1)
    torch.testing.assert_close(out, ref_out, atol=TOL, rtol=0)
    torch.testing.assert_close(w.band, ref.band, atol=TOL, rtol=0)
    torch.testing.assert_close(w.to_global, ref.to_global, atol=TOL, rtol=0)
    torch.testing.assert_close(w.from_global, ref.from_global, atol=TOL, rtol=0)
    torch.testing.assert_close(w.dense(), ref_probs, atol=TOL, rtol=0)
    torch.testing.assert_close(w.received, ref_probs.sum(1), atol=TOL, rtol=0)  # summed in the kernel
    if sinks:  # each row's sink share is what its weights leave to 1
        share = (1 - ref_probs.sum(-1)).masked_fill(~valid, 0.0)
        torch.testing.assert_close(w.sink, share, atol=TOL, rtol=0)
    # received only on request: None, then derived from the band on read; no weights: the same output
    out2, w2 = banded_attention(q, k, v, spec, gt, valid if n_pad else None, q[:, list(gt)], k, v, need_weights=True,
                                block=block, impl="blocked", received=False, **kw)
    assert w2.received is None
    torch.testing.assert_close(received(w2), ref_probs.sum(1), atol=TOL, rtol=0)
    out3, none = banded_attention(q, k, v, spec, gt, valid if n_pad else None, q[:, list(gt)], k, v,
                                  need_weights=False, block=block, impl="blocked", **kw)
    assert none is None
    torch.testing.assert_close(out3, out, atol=1e-6, rtol=0)
    return w


CASES = {  # n, window (two-sided), dilation
    "sliding, several full windows": (70, 16, 1),
    "window wider than the text: full causal attention": (37, 200, 1),
    "window equals the text": (24, 46, 1),
    "window 0: each token sees itself": (19, 0, 1),
    "dilation 2": (53, 8, 2),
    "dilation 3, odd length": (61, 6, 3),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("block", [None, 1, 5, 16])
@pytest.mark.parametrize("global_tokens", [(), (0, 1, 2, 3), (2, 30)])
def test_matrix(name, block, global_tokens):
    n, window, d = CASES[name]
    check(n, window, d, global_tokens=tuple(x for x in global_tokens if x < n), block=block)


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 1), (9, 3), (6, 2)])
def test_grouped_query_heads(heads, kv_heads):
    check(50, 12, heads=heads, kv_heads=kv_heads, global_tokens=(0, 1), block=8)


@pytest.mark.parametrize("name", ["sliding, several full windows", "window wider than the text: full causal attention"])
def test_softcap_and_learned_sinks(name):
    n, window, d = CASES[name]
    check(n, window, d, softcap=1.5, global_tokens=(0, 3), block=8)
    check(n, window, d, sinks=True, global_tokens=(0, 3), block=8)
    check(n, window, d, softcap=2.0, sinks=True, block=4, seed=3)


def test_padding():
    check(48, 10, global_tokens=(0, 40), n_pad=9, block=8)
    check(33, 6, d=2, global_tokens=(1,), n_pad=4, block=4, sinks=True)


def test_chunks_of_several_blocks(monkeypatch):
    # a small chunk budget: the full-window blocks run a few at a time, the last chunk shorter than the others
    monkeypatch.setattr(kernel, "CHUNK_BYTES", 4 * 4 * 8 * 30 * 3)
    check(203, 20, global_tokens=(0, 1), block=8, sinks=True)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 70), half=st.integers(0, 12), d=st.integers(1, 3), groups=st.sampled_from([(2, 1), (3, 3),
       (4, 2)]), data=st.data())
def test_property_random_configs(n, half, d, groups, data):
    n_pad = data.draw(st.integers(0, n // 3))
    real = n - n_pad
    gt = data.draw(st.lists(st.integers(0, max(real - 1, 0)), max_size=4, unique=True)) if real else []
    check(n, 2 * half, d, groups[0], groups[1], tuple(gt), n_pad, data.draw(st.sampled_from([None, 1, 3, 16])),
          sinks=data.draw(st.booleans()), seed=n)


@pytest.mark.parametrize("workers", [2, 3])
def test_blocks_shared_between_threads(monkeypatch, workers):
    # the query blocks cut into ranges, each run on its own pool thread: the same output and weights
    monkeypatch.setattr(kernel, "WORKERS", workers)
    check(203, 20, global_tokens=(0, 1), block=8, sinks=True)
    check(37, 200, global_tokens=(0, 3), block=5, softcap=1.5)  # full causal attention: every block a first block
    check(48, 10, global_tokens=(0, 40), n_pad=9, block=8)
    check(53, 8, d=2, heads=9, kv_heads=3, block=4)


@pytest.mark.parametrize("nb,first", [(1, 0), (1, 1), (3, 3), (7, 2), (64, 4), (40, 40)])
@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_split_covers_every_block_once(nb, first, parts):
    ranges = kernel._split(nb, first, 4, 12, parts)
    assert len(ranges) == min(parts, nb)
    assert ranges[0][0] == 0 and ranges[-1][1] == nb
    assert all(b0 < b1 for b0, b1 in ranges) and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
