"""Soft-capped logits (Gemma 2) and learned sinks (gpt-oss) on every path: the blocked kernel, FlexAttention
(uncompiled on the CPU: softcap as a score_mod, the sink from the log-sum-exp) and the dense full-attention path
equal the dense reference, which follows Hugging Face's eager formula; captured rows sum to 1 minus the sink
share, and the share is kept per head and query."""
import pytest
import torch

from lfviz.attention.banded import banded_attention
from lfviz.attention.layout import weights_from_dense, weights_to_dense
from lfviz.attention.logits import soft_cap, softmax_with_sink
from lfviz.attention.reference import reference_attention
from lfviz.config import LayerSpec

TOL = 1e-4


def hf_eager(scores, mask, sinks=None, softcap=None):
    """Hugging Face's eager recipe, written out: softcap, mask, then the sink column concatenated and dropped."""
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores = scores.masked_fill(~mask, float("-inf"))
    if sinks is None:
        return torch.softmax(scores, -1)
    sink = sinks.view(-1, 1, 1).expand(*scores.shape[:-1], 1)
    return torch.softmax(torch.cat([scores, sink], -1), -1)[..., :-1]


def test_the_helpers_follow_hugging_face():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 5, 7, generator=g) * 40
    mask = torch.rand(3, 5, 7, generator=g) > 0.3
    mask[..., 0] = True
    sinks = torch.randn(3, generator=g)
    probs, share = softmax_with_sink(soft_cap(s, 30.0).masked_fill(~mask, float("-inf")), sinks, head_dim=-3)
    torch.testing.assert_close(probs, hf_eager(s, mask, sinks, 30.0))
    torch.testing.assert_close(probs.sum(-1) + share, torch.ones(3, 5))
    assert soft_cap(s, 30.0).abs().max() < 30 and soft_cap(s, None) is s


def run(n, window, dilation, gt=(), impl="blocked", causal=True, softcap=None, sinks=True, n_pad=0, hd=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    H = len(dilation)
    q, k, v = (torch.randn(H, n, hd, generator=g) * 2 for _ in range(3))
    sink = torch.randn(H, generator=g) + 1 if sinks else None
    valid = torch.ones(n, dtype=torch.bool)
    valid[n - n_pad:] = False
    spec = LayerSpec(window, tuple(dilation))
    out, w = banded_attention(q, k, v, spec, gt, valid if n_pad else None, q[:, list(gt)], k, v, need_weights=True,
                              impl=impl, causal=causal, softcap=softcap, sinks=sink)
    ref_out, ref_probs = reference_attention(q, k, v, q, k, v, spec, gt, valid, causal=causal, softcap=softcap,
                                             sinks=sink)
    torch.testing.assert_close(out, ref_out, atol=TOL, rtol=0)
    ref = weights_from_dense(ref_probs, spec.for_length(n).window, tuple(dilation), gt)
    torch.testing.assert_close(w.band, ref.band, atol=TOL, rtol=0)
    torch.testing.assert_close(w.to_global, ref.to_global, atol=TOL, rtol=0)
    torch.testing.assert_close(w.from_global, ref.from_global, atol=TOL, rtol=0)
    torch.testing.assert_close(w.received, ref_probs.sum(1), atol=TOL, rtol=0)
    rows = weights_to_dense(w).sum(-1)
    if sinks:  # rows sum to 1 minus the sink's share, kept per head and query (0 at padding)
        assert w.sink.shape == (H, n)
        torch.testing.assert_close(rows[:, valid] + w.sink[:, valid], torch.ones(H, int(valid.sum())), atol=1e-5,
                                   rtol=0)
        assert (w.sink[:, valid] > 0).all() and not w.sink[:, ~valid].any()
    else:
        assert w.sink is None
        torch.testing.assert_close(rows[:, valid], torch.ones(H, int(valid.sum())), atol=1e-5, rtol=0)
    plain, none = banded_attention(q, k, v, spec, gt, valid if n_pad else None, q[:, list(gt)], k, v,
                                   need_weights=False, impl=impl, causal=causal, softcap=softcap, sinks=sink)
    assert none is None
    torch.testing.assert_close(plain, out, atol=1e-5, rtol=0)
    return w


CASES = {
    "band": dict(n=40, window=8, dilation=[1, 1]),
    "band and sinks (global tokens)": dict(n=45, window=6, dilation=[1, 1, 1], gt=(0, 1, 2)),
    "per-head dilation and globals": dict(n=37, window=6, dilation=[1, 2, 3], gt=(0, 20)),
    "window covering the text": dict(n=20, window=64, dilation=[1, 1]),
    "padding": dict(n=30, window=8, dilation=[1, 2], gt=(3,), n_pad=5),
}


@pytest.mark.parametrize("impl", ["blocked", "flex"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("softcap, sinks", [(5.0, False), (None, True), (5.0, True)],
                         ids=["softcap", "sinks", "softcap+sinks"])
@pytest.mark.parametrize("case", list(CASES))
def test_kernels_equal_the_reference(case, softcap, sinks, causal, impl):
    run(**CASES[case], impl=impl, causal=causal, softcap=softcap, sinks=sinks)


def test_softcap_and_sinks_change_the_result():
    """Not a no-op: the same inputs without them differ (the scores reach past the cap)."""
    base = run(40, 8, [1, 1], softcap=None, sinks=False)
    capped = run(40, 8, [1, 1], softcap=2.0, sinks=False)
    sunk = run(40, 8, [1, 1], softcap=None, sinks=True)
    assert (base.band - capped.band).abs().max() > 1e-2
    assert (base.band - sunk.band).abs().max() > 1e-2


def test_full_attention_path_without_weights_has_the_softcap_and_the_sink():
    """The dense path (a window covering the text, no weights asked) follows the same formula."""
    g = torch.Generator().manual_seed(3)
    H, n, hd = 2, 25, 8
    q, k, v = (torch.randn(H, n, hd, generator=g) * 3 for _ in range(3))
    sinks = torch.tensor([0.5, 2.0])
    spec = LayerSpec(64, (1, 1))
    out, _ = banded_attention(q, k, v, spec, causal=True, softcap=4.0, sinks=sinks)
    want, _ = reference_attention(q, k, v, q, k, v, spec, causal=True, softcap=4.0, sinks=sinks)
    torch.testing.assert_close(out, want, atol=TOL, rtol=0)


def test_compiled_flexattention_takes_the_softcap_score_mod_and_the_sink():
    """Compiled (as on a GPU; on the CPU it returns no log-sum-exp, so with sinks it runs uncompiled and says the
    same numbers): the score_mod and the sink rescaling equal the reference."""
    import warnings

    from lfviz.attention import flex

    g = torch.Generator().manual_seed(5)
    H, n, hd = 2, 150, 16
    q, k, v = (torch.randn(H, n, hd, generator=g) * 2 for _ in range(3))
    sinks = torch.tensor([0.0, 1.5])
    spec = LayerSpec(20, (1, 1))
    key_ok = torch.ones(n, dtype=torch.bool)
    for s in (None, sinks):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out, *_ = flex.flex_local(q / hd ** 0.5, k, v, key_ok, 10, (1, 1), k[:, :0], v[:, :0], need_weights=False,
                                      compiled=True, global_pos=torch.zeros(0, dtype=torch.long), softcap=3.0, sinks=s)
        want, _ = reference_attention(q, k, v, q, k, v, spec, causal=True, softcap=3.0, sinks=s)
        torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
