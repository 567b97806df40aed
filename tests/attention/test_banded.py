"""The fast kernels equal the dense reference built from the mask predicate: the blocked kernel (the CPU's) and
the FlexAttention path (the GPU's; here uncompiled, so the mask function is applied to every pair and the
log-sum-exp is returned: test_flex.py covers its block mask and the compiled kernel)."""
import gc

import pytest
import torch
from hypothesis import given, settings, strategies as st

from lfviz.attention.banded import banded_attention
from lfviz.config import LayerSpec
from lfviz.attention.layout import weights_from_dense, weights_to_dense
from lfviz.attention.reference import reference_attention

TOL = 1e-4


def check(n, window, dilation, global_tokens=(), n_pad=0, hd=8, block=None, seed=0, impl="blocked", causal=False):
    g = torch.Generator().manual_seed(seed)
    H = len(dilation)
    q, k, v, qg, kg, vg = (torch.randn(H, n, hd, generator=g) for _ in range(6))
    valid = torch.ones(n, dtype=torch.bool)
    if n_pad:
        valid[n - n_pad:] = False
    spec = LayerSpec(window, tuple(dilation))
    gt = tuple(sorted(global_tokens))
    out, w = banded_attention(q, k, v, spec, gt, valid, qg[:, list(gt)], kg, vg, need_weights=True, block=block,
                              impl=impl, causal=causal)
    ref_out, ref_probs = reference_attention(q, k, v, qg, kg, vg, spec, gt, valid, causal=causal)
    useful = spec.for_length(n).window  # the band is never wider than the text (a wider window reaches nothing more)
    ref = weights_from_dense(ref_probs, useful, tuple(dilation), gt)
    assert w.band.shape == (H, n, useful + 1) and useful <= window
    if window > useful:  # what is left out was all zero
        assert not weights_from_dense(ref_probs, window, tuple(dilation), gt).band[..., :(window - useful) // 2].any()
    assert w.to_global.shape == (H, n, len(gt)) and w.from_global.shape == (H, len(gt), n)
    torch.testing.assert_close(out, ref_out, atol=TOL, rtol=0)  # padding rows included: 0 in both
    torch.testing.assert_close(w.band, ref.band, atol=TOL, rtol=0)
    torch.testing.assert_close(w.to_global, ref.to_global, atol=TOL, rtol=0)
    torch.testing.assert_close(w.from_global, ref.from_global, atol=TOL, rtol=0)
    dense = weights_to_dense(w)
    torch.testing.assert_close(dense, ref_probs, atol=TOL, rtol=0)
    torch.testing.assert_close(w.received, ref_probs.sum(1), atol=TOL, rtol=0)  # what each key receives
    rows = dense.sum(-1)[:, valid]
    torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-5, rtol=0)  # rows sum to 1
    # need_weights=False gives the same output
    out2, none = banded_attention(q, k, v, spec, gt, valid, qg[:, list(gt)], kg, vg, need_weights=False, block=block,
                                  impl=impl, causal=causal)
    assert none is None
    torch.testing.assert_close(out2, out, atol=1e-6, rtol=0)
    return w


CASES = {
    "plain": (64, 8, [1, 1]),
    "length not a multiple of the block": (67, 8, [1, 1]),
    "window wider than the text": (10, 64, [1, 1]),
    "window equals the text": (16, 16, [1]),
    "dilation 2": (50, 6, [2, 2]),
    "dilation 3, odd length": (61, 4, [3]),
    "per-head dilation": (45, 6, [1, 2, 3, 1]),
    "dilation larger than the text": (5, 4, [8]),
    "single token": (1, 4, [1]),
    "two-token window": (17, 2, [1, 2]),
}


IMPLS = pytest.mark.parametrize("impl", ["blocked", "flex"])
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


@IMPLS
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("globals_", [(), (0,), "last", (0, 3, 9)])
def test_matrix(name, globals_, impl):
    n, window, dilation = CASES[name]
    gt = (n - 1,) if globals_ == "last" else tuple(x for x in globals_ if x < n)
    check(n, window, dilation, gt, impl=impl)


@IMPLS
@pytest.mark.parametrize("n_pad", [1, 5, 20])
def test_padding(n_pad, impl):
    check(40, 8, [1, 2], (0, 3), n_pad=n_pad, impl=impl)


@IMPLS
def test_every_token_global_and_longer_than_a_flex_block(impl):
    check(9, 4, [1, 2], tuple(range(9)), impl=impl)
    check(300, 40, [1, 2, 3], (5, 200), n_pad=7, impl=impl)  # several 128-blocks, dilation per head


@pytest.mark.parametrize("block", [1, 3, 16, 64])
def test_block_sizes(block):
    check(53, 12, [1, 2], (2,), block=block)


def test_every_token_global():
    check(9, 4, [1, 2], tuple(range(9)))


@IMPLS
@pytest.mark.parametrize("global_tokens", [(), (0,), (2, 30), (0, 1, 2, 3)])
@pytest.mark.parametrize("name", list(CASES))
def test_causal_matrix(name, global_tokens, impl):
    """Causal (a language model's attention): the same pairs with keys only at or before the query."""
    n, window, dilation = CASES[name]
    check(n, window, dilation, tuple(g for g in global_tokens if g < n), causal=True, impl=impl)
    check(n, window, dilation, tuple(g for g in global_tokens if g < n), n_pad=min(3, n - 1), causal=True, seed=1,
          impl=impl)


@IMPLS
def test_causal_longer_than_a_flex_block(impl):
    check(300, 40, [1, 2, 3], (0, 1, 200), causal=True, impl=impl)
    check(300, 40, [1, 2, 3], (5, 200), n_pad=7, causal=True, impl=impl)


@IMPLS
def test_causal_rows_see_the_past_and_their_sinks_only(impl):
    w = check(40, 8, [1, 2], (0, 1, 30), causal=True, impl=impl)
    assert not w.band[:, :, 5:].any()  # offsets > 0 hold nothing
    assert w.causal and w.stored.shape[-1] == 5 and w.window == 8  # so only offsets <= 0 are kept
    assert w.band[0, 20].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]  # itself and the 4 previous tokens
    assert w.band[1, 20].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]  # every 2nd: 12, 14, 16, 18, 20
    assert w.to_global[:, 20, 2].abs().max() == 0 and w.to_global[:, 35, 2].min() > 0  # sink 30 only after it
    assert not w.from_global[:, 2, 31:].any()  # global token 30 sees nothing after itself


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 70), half=st.integers(1, 10), heads=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       data=st.data())
def test_property_random_causal_configs(n, half, heads, data):
    n_pad = data.draw(st.integers(0, n // 3))
    real = n - n_pad
    gt = data.draw(st.lists(st.integers(0, max(real - 1, 0)), max_size=4, unique=True)) if real else []
    check(n, 2 * half, heads, tuple(gt), n_pad=n_pad, block=data.draw(st.sampled_from([None, 1, 4, 16])), seed=n,
          causal=True)


@IMPLS
@pytest.mark.parametrize("global_tokens", [(), (0,), (1, 5)])
def test_padding_queries_output_exactly_zero(global_tokens, impl):
    """A padding query attends nothing (mask.py): its output row is 0, as in HF, allenai and the reference, with
    or without global keys it could otherwise have seen."""
    H, n, hd = 2, 40, 8
    g = torch.Generator().manual_seed(3)
    q, k, v, qg, kg, vg = (torch.randn(H, n, hd, generator=g) for _ in range(6))
    valid = torch.arange(n) < 29
    out, _ = banded_attention(q, k, v, LayerSpec(6, (1, 2)), global_tokens, valid, qg[:, list(global_tokens)], kg,
                              vg, impl=impl)
    assert out[:, ~valid].abs().max() == 0
    assert out[:, valid].abs().min(-1).values.gt(0).all()


@IMPLS
def test_a_window_wider_than_the_text_costs_what_the_text_needs(impl):
    """Window 10^5 on 20 tokens: the band is as wide as the widest useful window (2 * 19 + 1 columns), and the
    output is the same as with that window; with dilation 3 on every head, (19 // 3) keys per side suffice."""
    H, n, hd = 2, 20, 8
    q, k, v = (torch.randn(H, n, hd, generator=torch.Generator().manual_seed(s)) for s in range(3))
    huge, w = banded_attention(q, k, v, LayerSpec(10 ** 5, (1, 1)), need_weights=True, impl=impl)
    exact, w_exact = banded_attention(q, k, v, LayerSpec(2 * (n - 1), (1, 1)), need_weights=True, impl=impl)
    assert w.band.shape == (H, n, 2 * (n - 1) + 1) and w.window == 2 * (n - 1)
    torch.testing.assert_close(huge, exact, atol=1e-6, rtol=0)
    torch.testing.assert_close(w.band, w_exact.band, atol=1e-6, rtol=0)
    _, w3 = banded_attention(q, k, v, LayerSpec(10 ** 5, (3, 3)), need_weights=True, impl=impl)
    assert w3.band.shape[-1] == 2 * (19 // 3) + 1
    assert LayerSpec(10 ** 5, (3, 1)).for_length(n).window == 2 * 19  # the undilated head needs the whole text
    assert LayerSpec(8, (1,)).for_length(n) == LayerSpec(8, (1,))  # narrower than the text: unchanged


def test_band_columns_follow_dilation():
    """Column c of query i is key i + (c - W/2) * d: the own weight sits in the middle column."""
    w = check(30, 4, [3])
    i = 15
    assert w.band[0, i].nonzero().flatten().tolist() == [0, 1, 2, 3, 4]
    assert w.band[0, 0].nonzero().flatten().tolist() == [2, 3, 4]  # keys left of 0 are out of range


def test_chunked_path_equals_single_chunk():
    """Many chunks (tiny chunk budget) give the same answer as one."""
    from lfviz.attention import blocked

    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 300, 8, generator=g) for _ in range(3))
    gk, gv = torch.randn(2, 1, 8, generator=g), torch.randn(2, 1, 8, generator=g)
    ok = torch.ones(1, 300, dtype=torch.bool)
    a = blocked.band_core(q, k, v, ok, 20, gk, gv, True, block=16, chunk_bytes=1)
    b = blocked.band_core(q, k, v, ok, 20, gk, gv, True, block=16, chunk_bytes=1 << 30)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0)


@IMPLS
@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 80), half=st.integers(1, 12), heads=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       data=st.data())
def test_property_random_configs(n, half, heads, data, impl):
    n_pad = data.draw(st.integers(0, n // 3))
    real = n - n_pad
    gt = data.draw(st.lists(st.integers(0, max(real - 1, 0)), max_size=4, unique=True)) if real else []
    block = data.draw(st.sampled_from([None, 1, 4, 16]))  # the blocked kernel's; flex's blocks are fixed
    check(n, 2 * half, heads, tuple(gt), n_pad=n_pad, block=block, seed=n, impl=impl)


def test_dilation_beyond_the_text_is_cheap_and_exact():
    w = check(7, 4, [10 ** 6, 1])
    assert w.band[0, 3].nonzero().flatten().tolist() == [2]  # only its own column


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n_pad", [0, 3])
def test_global_rows_through_the_weights_equal_projecting_every_position(bias, n_pad):
    # GlobalProjections never makes the (H, n, hd) global keys and values: the answer must not change
    from lfviz.attention.banded import GlobalProjections

    g = torch.Generator().manual_seed(3)
    H, hd, n = 3, 4, 40
    D = H * hd
    torch.manual_seed(3)
    key, value, query = (torch.nn.Linear(D, D, bias=bias) for _ in range(3))
    hidden = torch.randn(n, D, generator=g)
    heads = lambda x: x.view(n, H, hd).transpose(0, 1)  # (H, n, hd)
    q, k, v = (torch.randn(H, n, hd, generator=g) for _ in range(3))
    valid = torch.ones(n, dtype=torch.bool)
    valid[n - n_pad:] = n_pad == 0
    gt = (0, 7, n - 1)  # the last one on padding when n_pad
    spec = LayerSpec(10, (1, 2, 1))
    with torch.no_grad():
        qg = heads(query(hidden))[:, list(gt)]
        kg, vg = heads(key(hidden)), heads(value(hidden))
        out, w = banded_attention(q, k, v, spec, gt, valid, qg, kg, vg, need_weights=True)
        out2, w2 = banded_attention(q, k, v, spec, gt, valid, qg, GlobalProjections(hidden, key, value, H), None,
                                    need_weights=True)
    assert torch.allclose(out, out2, atol=1e-5) and torch.allclose(w.from_global, w2.from_global, atol=1e-6)
    assert torch.equal(w.band, w2.band) and torch.allclose(w.received, w2.received, atol=1e-5)


def test_causal_blocked_capture_keeps_the_past_half_alone():
    # the blocked kernel writes the causal band's past half (W/2 + 1 columns) straight, with no full band made
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 50, 8, generator=g) for _ in range(3))
    spec = LayerSpec(12, (1, 3))
    _, w = banded_attention(q, k, v, spec, (0, 1), None, q[:, :2], k, v, need_weights=True, impl="blocked",
                            causal=True)
    _, ref = reference_attention(q, k, v, q, k, v, spec, (0, 1), None, causal=True)
    assert w.causal and w.stored.shape == (2, 50, 7)
    assert torch.allclose(w.dense(), ref, atol=TOL)


@pytest.mark.parametrize("causal", [False, True])
def test_one_block_per_chunk_masks_bad_keys_where_they_are(monkeypatch, causal):
    # one block per chunk: blocks whose key window holds no global, padding or out-of-text key get their two
    # out-of-band triangles masked alone, the others their bad keys' columns too; both kinds in one run
    from lfviz.attention import blocked

    monkeypatch.setitem(blocked.CHUNK_BYTES, "cpu", 1)
    check(400, 16, [1, 2], (0, 200), n_pad=30, block=16, causal=causal)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_follow_the_fp32_kernel(dtype):
    # half-precision q, k, v: scores are made in that dtype and copied into the fp32 buffer; the rest as in fp32
    from lfviz.attention import blocked

    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, 200, 8, generator=g) for _ in range(3))
    gk, gv = torch.randn(2, 1, 8, generator=g), torch.randn(2, 1, 8, generator=g)
    ok = torch.ones(1, 200, dtype=torch.bool)
    ok[0, 3] = False
    full = blocked.band_core(q, k, v, ok, 20, gk, gv, True, block=16)
    half = blocked.band_core(q.to(dtype), k.to(dtype), v.to(dtype), ok, 20, gk.to(dtype), gv.to(dtype), True,
                             block=16)
    assert half[0].dtype == dtype and half[1].dtype == torch.float32
    for x, y in zip(full[:4], half[:4]):
        torch.testing.assert_close(y.float(), x, atol=5e-2, rtol=0)


def test_blocked_kernel_causal_on_its_own(monkeypatch):
    # band_core's causal path, called directly (banded_attention sends single-dilation causal layers to
    # causal_band.py): one block per chunk, interior and edge blocks, equal to the reference
    import math

    from lfviz.attention import blocked

    monkeypatch.setitem(blocked.CHUNK_BYTES, "cpu", 1)
    g = torch.Generator().manual_seed(4)
    H, n, hd = 2, 100, 8
    q, k, v = (torch.randn(H, n, hd, generator=g) for _ in range(3))
    spec = LayerSpec(12, (1, 1))
    ok = torch.ones(n, dtype=torch.bool)
    none = torch.zeros(H, 0, hd)
    out, band, tog, rec, _ = blocked.blocked_local(q / math.sqrt(hd), k, v, ok, spec, none, none, True,
                                                   torch.float32, block=16, causal=True)
    ref_out, ref_probs = reference_attention(q, k, v, q, k, v, spec, (), None, causal=True)
    ref = weights_from_dense(ref_probs, 12, (1, 1), ())
    assert band.shape == (H, n, 7)
    torch.testing.assert_close(out, ref_out, atol=TOL, rtol=0)
    torch.testing.assert_close(band, ref.band[..., :7], atol=TOL, rtol=0)
    torch.testing.assert_close(rec, ref_probs.sum(1), atol=TOL, rtol=0)


def test_capture_pool_hands_out_a_band_again_only_once_dropped(monkeypatch):
    # captured bands come from reused slabs (capture_pool): a dropped run's slab serves the next run, a held one is
    # never written again; the weights are the reference's either way
    from lfviz.attention import capture_pool

    monkeypatch.setattr(capture_pool, "MIN_BYTES", 1)
    gc.collect()
    capture_pool.release()
    others = capture_pool.stats()["slabs"]  # slabs that earlier tests' live results (fixtures, caches) still hold
    for seed in range(2):  # equal to the reference, bands from the pool (the second run's from the first's slab)
        check(300, 40, [1, 1, 1], (0,), seed=seed)
    assert capture_pool.release() > 0 and capture_pool.stats()["slabs"] == others

    def band(seed):
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(3, 300, 8, generator=g) for _ in range(3))
        return banded_attention(q, k, v, LayerSpec(40, (1, 1, 1)), (), None, need_weights=True,
                                impl="blocked")[1].band

    first = band(0)
    ptr, ptr_size = first.data_ptr(), first.numel() * first.element_size()
    del first
    held = band(1)
    assert held.data_ptr() == ptr  # the dropped slab, handed out again
    kept = held.clone()
    other = band(2)
    assert other.data_ptr() != ptr and not torch.equal(other, kept)
    assert torch.equal(held, kept)  # the held band was not overwritten
    slabs, idle = capture_pool.stats()["slabs"], capture_pool.stats()["idle_bytes"]
    del held, other, kept
    assert capture_pool.stats()["idle_bytes"] >= idle + 2 * ptr_size > idle  # both bands' slabs idle once dropped
    assert capture_pool.release() > 0 and capture_pool.stats()["slabs"] == others < slabs


@pytest.mark.parametrize("onednn", [True, False])
@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("shape", [(4096, 384), (1, 384), (3, 5, 384)])
def test_onednn_linear_equals_the_module(monkeypatch, shape, gelu, onednn):
    # the encoder's dense layers through oneDNN (attention/linear.py; used where the CPU has AVX-512) or MKL, the
    # exact GELU fused or not, give the module's answer to fp32 rounding
    from lfviz.attention import linear as module
    from lfviz.attention.linear import linear

    if onednn and not module.ONEDNN:
        pytest.skip("this torch build has no oneDNN linear")
    monkeypatch.setattr(module, "USE_ONEDNN", onednn)

    g = torch.Generator().manual_seed(5)
    lin = torch.nn.Linear(384, 1536)
    x = torch.randn(*shape, generator=g)
    with torch.inference_mode():
        got = linear(x, lin, gelu)
    ref = torch.nn.functional.linear(x.double(), lin.weight.double(), lin.bias.double())
    ref = torch.nn.functional.gelu(ref) if gelu else ref
    assert got.dtype == torch.float32 and got.shape == (*shape[:-1], 1536)
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=0)
    x.requires_grad_(True)  # under autograd: the module's own forward, gradients flow
    linear(x, lin, gelu).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("copies", [True, False])
def test_global_projections_equal_to_the_local_ones_are_the_local_ones(monkeypatch, copies):
    """A converted model's global projections start as copies of the local ones (`model.convert`): then the module
    uses the local q, k, v for the global rows (no projection of its own, no `GlobalProjections`), with the same
    answer as projecting them apart. Different weights (a pretrained Longformer) keep their own projections, and a
    weight changed in place is checked again."""
    from lfviz.attention import self_attention
    from lfviz.attention.self_attention import BandedSelfAttention

    torch.manual_seed(5)
    D, H, n = 24, 3, 60
    attn = BandedSelfAttention(D, H).eval()
    with torch.no_grad():
        for name in ("query", "key", "value"):
            src, dst = getattr(attn, name), getattr(attn, f"{name}_global")
            dst.weight.copy_(src.weight if copies else src.weight + 0.1)
            dst.bias.copy_(src.bias)
    hidden = torch.randn(n, D)
    spec, gt = LayerSpec(8, (1, 2, 1)), (0, 17, 42)
    made = []
    real = self_attention.GlobalProjections
    monkeypatch.setattr(self_attention, "GlobalProjections", lambda *a: made.append(a) or real(*a))
    with torch.no_grad():
        out, w = attn(hidden, spec, gt, need_weights=True)
        q, k, v = (attn._heads(getattr(attn, f"{x}_global")(hidden)) for x in ("query", "key", "value"))
        want, ref = banded_attention(*(attn._heads(getattr(attn, x)(hidden)) for x in ("query", "key", "value")),
                                     spec, gt, None, q[:, list(gt)], k, v, need_weights=True)
    assert (made == []) == copies  # the local projections serve when equal, and only then
    torch.testing.assert_close(out, want.transpose(0, 1).reshape(n, D), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w.from_global, ref.from_global, atol=1e-6, rtol=1e-5)
    if copies:
        with torch.no_grad():
            attn.key_global.weight.add_(0.1)  # in place: a new version of the tensor, checked again
            attn(hidden, spec, gt)
        assert len(made) == 1
