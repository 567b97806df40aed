"""The full-attention path (`dense.py`, taken by `banded_attention` when the window covers the text and no weights
are wanted) equals the dense reference from the mask predicate: padding (at the end or the start), global tokens,
causal, a custom scale, half precision; both its fused path (SDPA) and its chunked softmax (softcaps, sinks, an
observer of the probabilities)."""
import threading

import pytest
import torch

from lfviz.attention import dense
from lfviz.attention.banded import banded_attention
from lfviz.attention.logits import soft_cap, softmax_with_sink
from lfviz.attention.reference import reference_attention
from lfviz.config import LayerSpec


@pytest.mark.parametrize("path", ["fused", "chunked"])
@pytest.mark.parametrize("n, window, global_tokens, n_pad, causal", [
    (1, 2, (), 0, False),
    (37, 80, (), 0, False),
    (37, 72, (0, 5), 0, False),       # exactly full: one_sided = n - 1
    (50, 200, (3,), 7, False),        # padding keys are never attended, padding rows are 0
    (50, 200, (3,), -7, False),       # padded at the start
    (45, 100, (), 0, True),
    (45, 100, (0, 1, 2, 3), 0, True),  # sinks under full causal attention: the causal mask is all there is
    (30, 60, (2,), 4, True),          # causal and padding together (at the end: the kept keys' causal mask)
    (30, 60, (9,), -4, True),         # causal, padded at the start (the fused path passes the mask)
])
def test_full_window_equals_the_reference(monkeypatch, path, n, window, global_tokens, n_pad, causal):
    monkeypatch.setattr(dense, "CHUNK_BYTES", 4 * 2 * 16 * 3)  # several query chunks even on tiny inputs
    g = torch.Generator().manual_seed(n)
    H, hd = 2, 8
    q, k, v, qg, kg, vg = (torch.randn(H, n, hd, generator=g) for _ in range(6))
    if causal:
        qg, kg, vg = q, k, v
    valid = torch.ones(n, dtype=torch.bool)
    if n_pad > 0:
        valid[n - n_pad:] = False
    elif n_pad < 0:
        valid[:-n_pad] = False
    spec = LayerSpec(window, (1, 1))
    assert dense.is_full(spec.for_length(n).one_sided, spec.dilation, n)
    gt = tuple(global_tokens)
    calls, chunked = [], []
    monkeypatch.setattr("lfviz.attention.banded.dense_attention",
                        lambda *a, **kw: calls.append(1) or dense.dense_attention(*a, **kw))
    real_chunked = dense._chunked
    monkeypatch.setattr(dense, "_chunked", lambda *a, **kw: chunked.append(1) or real_chunked(*a, **kw))
    with dense.observe(lambda s, e, p: None) if path == "chunked" else torch.no_grad():
        out, w = banded_attention(q, k, v, spec, gt, valid if n_pad else None, qg[:, list(gt)] if gt else None,
                                  kg if gt else None, vg if gt else None, causal=causal, scale=0.3)
    ref, _ = reference_attention(q, k, v, qg, kg, vg, spec, gt, valid, causal=causal, scale=0.3)
    assert calls and w is None
    assert bool(chunked) == (path == "chunked")
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_half_precision_inputs_are_computed_in_fp32_and_given_back_in_their_dtype():
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(3, 40, 16, generator=g).bfloat16() for _ in range(3))
    out = dense.dense_attention(q, k, v, causal=True, scale=0.25)
    want = dense.dense_attention(q.float(), k.float(), v.float(), causal=True, scale=0.25)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, want.bfloat16(), atol=0, rtol=0)


def test_a_band_narrower_than_the_text_or_dilated_is_not_full():
    assert not dense.is_full(9, (1,), 11) and dense.is_full(10, (1,), 11)
    assert not dense.is_full(100, (1, 2), 11)  # a dilated head skips neighbours


@pytest.mark.parametrize("causal, softcap, with_sinks", [(False, None, False), (True, 2.0, True), (True, None, False)])
def test_observe_hands_over_every_chunk_of_the_probabilities_it_uses(monkeypatch, causal, softcap, with_sinks):
    """`observe` without `rows` gives each query chunk's probabilities, as the softmax (softcap, sinks, causal mask)
    makes them, and the output stays what it is outside the block; in another thread nothing is handed over."""
    monkeypatch.setattr(dense, "CHUNK_BYTES", 4 * 3 * 29 * 5)  # 5 queries per chunk: 6 chunks over 29
    g = torch.Generator().manual_seed(3)
    H, n, hd = 3, 29, 8
    q, k, v = (torch.randn(H, n, hd, generator=g) for _ in range(3))
    sinks = torch.tensor([-1.0, 0.5, 2.0]) if with_sinks else None
    seen = []
    plain = dense.dense_attention(q, k, v, causal=causal, scale=0.4, softcap=softcap, sinks=sinks)
    with dense.observe(lambda s, e, p: seen.append((s, e, p.clone()))):
        out = dense.dense_attention(q, k, v, causal=causal, scale=0.4, softcap=softcap, sinks=sinks)
        other = threading.Thread(target=dense.dense_attention, args=(q, k, v))
        other.start()
        other.join()
    dense.dense_attention(q, k, v, causal=causal)
    assert [(s, e) for s, e, _ in seen] == [(s, min(n, s + 5)) for s in range(0, n, 5)]
    scores = soft_cap(q * 0.4 @ k.transpose(1, 2), softcap)
    if causal:
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    want = softmax_with_sink(scores, sinks, head_dim=-3)[0]
    torch.testing.assert_close(torch.cat([p for _, _, p in seen], dim=1), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, plain, atol=1e-6, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_observe_rows_hands_over_each_query_log_sum_exp_on_the_fused_path(causal):
    """With `rows`, a run the flash kernel can do hands over q, k and each query's log-sum-exp once (the
    probabilities are exp(scale q . k - lse)) and no chunk; softcaps, sinks and padding still hand over chunks."""
    g = torch.Generator().manual_seed(4)
    H, n, hd = 3, 29, 8
    q, k, v = (torch.randn(H, n, hd, generator=g) for _ in range(3))
    chunks, rows = [], []
    plain = dense.dense_attention(q, k, v, causal=causal, scale=0.4)
    with dense.observe(lambda s, e, p: chunks.append((s, e)), rows=lambda *a: rows.append(a)):
        out = dense.dense_attention(q, k, v, causal=causal, scale=0.4)
    assert len(rows) == 1 and chunks == []
    rq, rk, lse, scale, rcausal = rows[0]
    assert rq is q and rk is k and scale == 0.4 and rcausal == causal and lse.shape == (H, n)
    scores = q * 0.4 @ k.transpose(1, 2)
    if causal:
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(torch.exp(scores - lse[..., None]), scores.softmax(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out, plain, atol=1e-6, rtol=0)
    valid = torch.ones(n, dtype=torch.bool)
    valid[-3:] = False
    for kw in (dict(softcap=2.0), dict(sinks=torch.zeros(H)), dict(valid=valid)):
        chunks.clear()
        with dense.observe(lambda s, e, p: chunks.append((s, e)), rows=lambda *a: rows.append(a)):
            dense.dense_attention(q, k, v, causal=causal, scale=0.4, **kw)
        assert len(rows) == 1 and chunks[-1][1] == n, kw
