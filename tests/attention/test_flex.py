"""The FlexAttention path (the GPU's), checked on the CPU.

Uncompiled, FlexAttention applies the mask function to every (query, key) pair and returns the log-sum-exp:
test_banded.py runs its whole matrix that way (layout, mask function, capture from the log-sum-exp). Compiled
(torch.compile also works on the CPU, without the log-sum-exp) it skips blocks as the BlockMask says, as on a
GPU: the tests here pin that block mask, the compiled kernel, the whole encoder and the layout cache.
"""
import warnings

import pytest
import torch
from torch.nn.attention.flex_attention import create_block_mask
from transformers import LongformerModel

import lfviz
from lfviz.attention import flex
from lfviz.attention.banded import banded_attention, resolve_impl
from lfviz.attention.indexing import mask_to_classes
from lfviz.config import LayerSpec
from lfviz.model.encoder import LongformerEncoder
from lfviz.attention.reference import reference_attention

from conftest import tiny_config

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")


# -- the block mask ---------------------------------------------------------------------------------------------
def _blocks(num, idx, nb):
    """(1, H, nq) counts + (1, H, nq, K) indices -> (H, nq, nb) bool: which key blocks each query block lists."""
    listed = torch.arange(idx.shape[-1]) < num[..., None]
    out = torch.zeros(*num.shape, nb + 1, dtype=torch.bool)
    out.scatter_(-1, torch.where(listed, idx.long(), nb), True)
    return out[0, :, :, :nb]


@pytest.mark.parametrize("n,G,w,dilation", [
    (300, 2, 20, (1, 1)), (1000, 1, 128, (1,)), (514, 0, 300, (2, 2)), (1800, 130, 64, (3, 1, 2)),
    (128, 0, 1, (1,)), (513, 1, 256, (1, 2, 4, 1)),
])
@pytest.mark.parametrize("causal", [False, True])
def test_block_mask_equals_evaluating_the_mask(n, G, w, dilation, causal):
    """Partial and full blocks from the geometry are exactly those of evaluating the mask on every pair of each
    head's sequence (query slots that hold a token; the rest are padding and list nothing). Causal: the global
    key blocks are listed whether or not a sink precedes the block's rows (time, not correctness), so there the
    geometry may list more partial blocks than evaluating finds, never fewer, and the same full ones."""
    ok = torch.rand(n, generator=torch.Generator().manual_seed(n)) > 0.05
    ok[::97] = False  # global or padding keys scattered through the band
    global_pos = torch.linspace(0, n - 1, G).long() if causal else None
    layout = flex._layout(ok, dilation, G, w, global_pos=global_pos)
    mine = layout.block_mask
    H, T, nb = len(dilation), layout.T, layout.T // flex.BLOCK
    query = torch.zeros(H, T, dtype=torch.bool)  # slots that hold a token of their head's classes
    for g in layout.groups:
        slot = torch.arange(g.d * g.P)
        query[g.heads, :g.d * g.P] = slot % g.P < g.m
    pred = flex.band_mask_mod(layout.codes, w, layout.first)
    ref = create_block_mask(lambda b, h, q, kv: pred(b, h, q, kv) & query[h, q], 1, H, T, T, device="cpu")
    assert torch.equal(_blocks(mine.full_kv_num_blocks, mine.full_kv_indices, nb),
                       _blocks(ref.full_kv_num_blocks, ref.full_kv_indices, nb))
    listed, wanted = _blocks(mine.kv_num_blocks, mine.kv_indices, nb), _blocks(ref.kv_num_blocks, ref.kv_indices, nb)
    if not causal:
        assert torch.equal(listed, wanted)
    else:
        assert not (wanted & ~listed).any()  # every block with an attended pair is listed
        kind = (layout.codes & 3).view(H, nb, flex.BLOCK)
        extra = listed & ~wanted  # listed for nothing: only blocks holding global keys
        assert not (extra & ~(kind == flex.GLOBAL_KEY).any(-1).unsqueeze(1)).any()


# -- the fused kernel, compiled on the CPU ------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("n,window,dilation,gt,n_pad", [
    (1000, 256, (1, 1), (0,), 0),     # 8 query blocks, most key blocks skipped, full blocks in the middle
    (700, 64, (2, 2), (3, 650), 5),   # dilation 2, padding, a global token in each class
    (389, 8, (3, 1), (), 0),          # per-head dilation, lengths that fit no block
    (150, 512, (1, 1), (149,), 0),    # window wider than the text
])
@pytest.mark.parametrize("causal", [False, True])
def test_compiled_kernel_skips_blocks_correctly(n, window, dilation, gt, n_pad, causal):
    g = torch.Generator().manual_seed(n)
    H, hd = len(dilation), 16
    q, k, v, qg, kg, vg = (torch.randn(H, n, hd, generator=g) for _ in range(6))
    valid = torch.ones(n, dtype=torch.bool)
    valid[n - n_pad:] = False
    is_global = torch.zeros(n, dtype=torch.bool)
    is_global[list(gt)] = True
    key_ok = valid & ~is_global
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, *_ = flex.flex_local(q / hd ** 0.5, k, v, key_ok, window // 2, dilation, k[:, list(gt)], v[:, list(gt)],
                                  need_weights=False, compiled=True,
                                  global_pos=torch.tensor(gt, dtype=torch.long) if causal else None)
    want, _ = reference_attention(q, k, v, qg, kg, vg, LayerSpec(window, dilation), gt, valid, causal=causal)
    torch.testing.assert_close(out[:, key_ok], want[:, key_ok], atol=1e-5, rtol=0)  # global rows: computed apart


# -- the whole model ------------------------------------------------------------------------------------------------
def test_encoder_flex_equals_blocked_with_capture():
    torch.manual_seed(0)
    enc = LongformerEncoder(LongformerModel(tiny_config(), add_pooling_layer=False).eval())
    ids = torch.randint(5, 30000, (45,), generator=torch.Generator().manual_seed(1))
    cfg = lfviz.AttentionConfig(window=[8, 12], dilation=[1, [1, 2, 3, 1]], global_tokens=(0, 20))
    specs = cfg.resolve(2, 4)
    runs = {}
    for impl in ("blocked", "flex"):
        with torch.no_grad(), lfviz.capture_attention(enc) as session:
            runs[impl] = (enc(ids, specs, cfg.global_tokens, capture=session, impl=impl).last_hidden_state,
                          session.capture)
    torch.testing.assert_close(runs["flex"][0], runs["blocked"][0], atol=1e-5, rtol=0)
    for layer in range(2):
        for name in ("band", "to_global", "from_global"):
            torch.testing.assert_close(getattr(runs["flex"][1], name)(layer), getattr(runs["blocked"][1], name)(layer),
                                       atol=1e-5, rtol=0)
        torch.testing.assert_close(runs["flex"][1].weights(layer).received, runs["blocked"][1].weights(layer).received,
                                   atol=1e-5, rtol=0)


def test_auto_is_the_blocked_kernel_on_the_cpu_and_bad_names_say_what_to_use():
    assert resolve_impl("auto", torch.device("cpu")) == "blocked"
    assert not flex.available(torch.device("cpu"))
    with pytest.raises(ValueError, match="auto, blocked, flex"):
        resolve_impl("triton", torch.device("cpu"))


def test_rows_without_any_key_give_zero_weights_not_nan():
    """A padding slot of a residue class sees no key: its log-sum-exp is -inf and its weights must stay 0."""
    q, k, v = (torch.randn(1, 5, 8) for _ in range(3))
    key_ok = torch.tensor([True, False, False, False, False])
    _, band, tog, rec, _ = flex.flex_local(q, k, v, key_ok, 1, (2,), k[:, :0], v[:, :0], need_weights=True)
    assert torch.isfinite(band).all() and torch.isfinite(rec).all()


def test_one_block_mask_serves_every_layer_of_a_forward_pass():
    """Without padding, the length and the global positions fix the layout: made once, reused by later layers."""
    flex._LAYOUTS.clear()
    q, k, v = (torch.randn(2, 50, 8) for _ in range(3))
    spec = LayerSpec(8, (1, 1))
    for _ in range(3):  # three "layers"
        banded_attention(q, k, v, spec, (0,), None, q[:, :1], k, v, impl="flex")
    assert len(flex._LAYOUTS) == 1
    banded_attention(q, k, v, spec, (5,), None, q[:, :1], k, v, impl="flex")  # other global token: other layout
    banded_attention(q, k, v, spec, (5,), torch.ones(50, dtype=torch.bool), q[:, :1], k, v, impl="flex")  # padding
    assert len(flex._LAYOUTS) == 2  # given a validity mask, nothing is cached


def test_a_gpu_that_cannot_compile_flex_falls_back_to_the_blocked_kernel(monkeypatch):
    """"auto" on a GPU where compiling fails (no Triton support, an untileable head size): one warning, the blocked
    kernel's answer, and "auto" stops choosing FlexAttention there; a forced "flex" reports the failure."""
    from torch._dynamo.exc import TorchDynamoException

    def broken(*a, **k):
        raise TorchDynamoException("no Triton backend for this GPU")

    monkeypatch.setattr(flex, "_FAILED", {})
    monkeypatch.setattr(flex, "available", lambda device, head_dim=64: ("cpu", head_dim) not in flex._FAILED)
    monkeypatch.setattr(flex, "flex_attention", broken)
    q, k, v = (torch.randn(2, 300, 8) for _ in range(3))  # long enough for "auto" to pick flex (`flex.suits`)
    spec = LayerSpec(8, (1, 2))
    want, _ = banded_attention(q, k, v, spec, (0,), None, q[:, :1], k, v, impl="blocked")
    with pytest.warns(UserWarning, match="could not be compiled for cpu with head size 8 .*blocked kernel"):
        got, _ = banded_attention(q, k, v, spec, (0,), None, q[:, :1], k, v, impl="auto")
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert resolve_impl("auto", torch.device("cpu"), 8) == "blocked"
    with pytest.raises(flex.FlexUnavailable, match="no Triton backend"):
        banded_attention(q, k, v, spec, (0,), None, q[:, :1], k, v, impl="flex")


@pytest.mark.slow
def test_new_lengths_windows_and_dilations_do_not_recompile_past_dynamos_limit():
    """Past torch._dynamo's recompile limit a compiled function silently runs uncompiled, which at 16k tokens
    means a quadratic score matrix. Documents of any length, any window, global count and mix of per-head
    dilations must share a few compiled graphs (batch and head count never change: one sequence per head)."""
    from torch._dynamo.utils import counters

    before = counters["frames"]["ok"]
    g = torch.Generator().manual_seed(0)
    for n, w, G, dilation in [(300, 20, 1, (1, 1, 1, 1)), (500, 64, 1, (1, 1, 1, 1)), (777, 64, 2, (2, 2, 2, 2)),
                              (1000, 8, 0, (1, 2, 3, 1)), (640, 128, 3, (4, 4, 1, 1)), (900, 100, 1, (3, 3, 3, 3)),
                              (1333, 16, 1, (1, 1, 2, 2)), (1200, 256, 1, (5, 1, 1, 1)), (410, 30, 2, (1, 1, 1, 1)),
                              (2560, 6, 5, (2, 4, 8, 16)), (129, 300, 1, (1, 1, 1, 1)), (1500, 2, 1, (5, 5, 5, 5))]:
        q, k, v = (torch.randn(4, n, 16, generator=g) for _ in range(3))
        ok = torch.ones(n, dtype=torch.bool)
        ok[:G] = False
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flex.flex_local(q, k, v, ok, w, dilation, k[:, :G], v[:, :G], need_weights=False, compiled=True)
    compiled = counters["frames"]["ok"] - before
    assert 1 <= compiled <= 3 < torch._dynamo.config.recompile_limit
