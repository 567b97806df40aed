"""CUDA runs equal the CPU fp32 reference within half-precision tolerance. Skipped without a GPU.

Both kernels run on the GPU: "flex" (FlexAttention, what `impl="auto"` picks on CUDA) and "blocked". No timing
here: speed and memory are in bench/gpu_bench.py.
"""
import pytest
import torch
from transformers import LongformerConfig, LongformerModel

import lfviz
from lfviz.attention.banded import banded_attention
from lfviz.config import LayerSpec
from lfviz.model.encoder import LongformerEncoder
from lfviz.attention.layout import weights_from_dense
from lfviz.attention.reference import reference_attention

from conftest import tiny_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

CONFIGS = [
    lfviz.AttentionConfig(window=8, global_tokens=(0,)),
    lfviz.AttentionConfig(window=[4, 6]),
    lfviz.AttentionConfig(window=[8, 12], dilation=2, global_tokens=(0, 7)),
    lfviz.AttentionConfig(window=6, dilation=[1, [1, 2, 3, 1]], global_tokens=(40,)),
    lfviz.AttentionConfig(window=128, global_tokens=(3,)),  # wider than the text
    lfviz.AttentionConfig(window=4, global_tokens=tuple(range(41))),  # every token global
]
HALF_TOL = {torch.float16: 2e-2, torch.bfloat16: 6e-2}


def test_auto_picks_flex_on_cuda_where_the_heads_are_wide_enough():
    from lfviz.attention.banded import resolve_impl

    assert resolve_impl("auto", torch.device("cuda"), 64) == "flex"
    assert resolve_impl("auto", torch.device("cuda"), 8) == "blocked"  # Triton tiles are >= 16 wide


def _tiny():  # head_dim 16: the narrowest FlexAttention compiles for on a GPU
    return tiny_config(hidden_size=64)


@pytest.mark.parametrize("impl", ["flex", "blocked"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("config", CONFIGS)
def test_tiny_model_cuda_matches_cpu(config, dtype, impl):
    torch.manual_seed(0)
    hf = LongformerModel(_tiny(), add_pooling_layer=False).eval()
    cpu = LongformerEncoder(hf).eval()
    ids = torch.randint(5, 30000, (41,), generator=torch.Generator().manual_seed(0))
    specs, gt = config.resolve(2, 4), config.check_globals(41)
    with torch.no_grad(), lfviz.capture_attention(cpu) as ref:
        want = cpu(ids, specs, gt, capture=ref, impl="blocked").last_hidden_state
    gpu = LongformerEncoder(LongformerModel(_tiny(), add_pooling_layer=False).eval())
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to("cuda", dtype)
    with torch.no_grad(), lfviz.capture_attention(gpu) as got:
        have = gpu(ids.cuda(), specs, gt, capture=got, impl=impl).last_hidden_state
    tol = HALF_TOL[dtype]
    torch.testing.assert_close(have.float().cpu(), want, atol=tol * 5, rtol=tol)
    for layer in range(2):
        for name in ("band", "to_global", "from_global"):
            a = getattr(got.capture, name)(layer)
            assert a.is_cuda  # captures stay where they were computed
            torch.testing.assert_close(a.float().cpu(), getattr(ref.capture, name)(layer), atol=tol, rtol=0)
        torch.testing.assert_close(got.capture.weights(layer).received.cpu(), ref.capture.weights(layer).received,
                                   atol=tol * 10, rtol=tol)


@pytest.mark.parametrize("impl", ["flex", "blocked"])
@pytest.mark.parametrize("dilation,globals_,n", [
    ((1,) * 12, (0,), 4096),
    ((2,) * 12, (0,), 4096),
    ((1, 1, 2, 2, 3, 3, 1, 1, 4, 4, 1, 1), (0, 17, 2000), 4000),
    ((1,) * 12, (), 3001),
])
def test_base_shapes_match_the_fp32_reference(dilation, globals_, n, impl):
    """longformer-base attention shapes (12 heads x 64, window 512), fp16 on the GPU vs the dense fp32 reference."""
    g = torch.Generator(device="cuda").manual_seed(n)
    H, hd = 12, 64
    q, k, v, qg, kg, vg = (torch.randn(H, n, hd, device="cuda", generator=g) for _ in range(6))
    spec = LayerSpec(512, dilation)
    want_out, probs = reference_attention(q, k, v, qg, kg, vg, spec, globals_)
    want = weights_from_dense(probs, 512, dilation, globals_)
    half = [x.half() for x in (q, k, v, qg[:, list(globals_)], kg, vg)]
    out, w = banded_attention(*half[:3], spec, globals_, None, *half[3:], need_weights=True,
                              weights_dtype=torch.float16, impl=impl)
    torch.testing.assert_close(out.float(), want_out, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(w.band.float(), want.band, atol=5e-3, rtol=0)
    torch.testing.assert_close(w.to_global.float(), want.to_global, atol=5e-3, rtol=0)
    torch.testing.assert_close(w.from_global.float(), want.from_global, atol=5e-3, rtol=0)
    rows = w.band.float().sum(-1) + w.to_global.float().sum(-1)  # non-global rows sum to 1
    local = torch.ones(n, dtype=torch.bool, device="cuda")
    local[list(globals_)] = False
    torch.testing.assert_close(rows[:, local], torch.ones_like(rows[:, local]), atol=1e-2, rtol=0)


def _base_model(positions: int, layers: int = 12) -> LongformerEncoder:
    """longformer-base shapes with random weights, fp16, positions for `positions` tokens."""
    cfg = LongformerConfig(hidden_size=768, num_hidden_layers=layers, num_attention_heads=12, intermediate_size=3072,
                           max_position_embeddings=positions + 2, attention_window=512, pad_token_id=1)
    torch.manual_seed(0)
    return LongformerEncoder(LongformerModel(cfg, add_pooling_layer=False).eval()).to("cuda", torch.float16)


def test_16k_capture_stays_on_the_gpu_and_rows_sum_to_one():
    enc = _base_model(16384, layers=2)
    ids = torch.randint(5, 50000, (16384,), device="cuda")
    specs = lfviz.AttentionConfig(window=512, dilation=[1, 2], global_tokens=(0,)).resolve(2, 12)
    with torch.inference_mode(), lfviz.capture_attention(enc, dtype=torch.float16) as session:
        out = enc(ids, specs, (0,), capture=session).last_hidden_state
    assert torch.isfinite(out).all()
    for layer in range(2):
        w = session.capture.weights(layer)
        assert w.band.is_cuda and w.band.dtype == torch.float16 and w.band.shape == (12, 16384, 513)
        rows = w.band.float().sum(-1)[:, 1:] + w.to_global.float().sum(-1)[:, 1:]
        torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-2, rtol=0)
        torch.testing.assert_close(w.from_global.float().sum(-1), torch.ones(12, 1, device="cuda"), atol=1e-2,
                                   rtol=0)


def test_65k_tokens_run_with_extended_positions():
    enc = _base_model(65536, layers=2)
    ids = torch.randint(5, 50000, (65536,), device="cuda")
    specs = lfviz.AttentionConfig(window=512, global_tokens=(0,)).resolve(2, 12)
    with torch.inference_mode():
        out = enc(ids, specs, (0,)).last_hidden_state
        blocked = enc(ids, specs, (0,), impl="blocked").last_hidden_state
    assert out.shape == (65536, 768) and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), blocked.float(), atol=5e-2, rtol=2e-2)


def test_embedded_auto_picks_cuda_and_matches_cpu():
    doc = "Longformer on a GPU keeps the capture where it was computed. " * 40
    cfg = lfviz.AttentionConfig(window=64, dilation=[1, 1, 1, 1, 2, 2], global_tokens=(0,))
    gpu = lfviz.load_runner("embedded", device="auto")
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float16
    assert gpu.device_description.startswith("GPU (") and gpu.device_description.endswith("float16, FlexAttention")
    cpu = lfviz.load_runner("embedded", device="cpu")
    a = gpu.run(doc, config=cfg, keep_on_device=True)
    b = cpu.run(doc, config=cfg)
    assert a.capture.band(0).device.type == "cuda"
    torch.testing.assert_close(a.last_hidden_state, b.last_hidden_state, atol=0.1, rtol=0.02)
    for layer in range(6):
        torch.testing.assert_close(a.capture.band(layer).float().cpu(), b.capture.band(layer), atol=2e-2, rtol=0)


def test_a_real_out_of_memory_is_a_message_and_the_next_run_works():
    """The app's answer to a GPU that is full: a message, the caches released, the next (smaller) run works."""
    from apptools import new_app

    total = torch.cuda.get_device_properties(0).total_memory
    at = new_app(600)
    at.session_state["document"], at.session_state["sample"] = "word " * 4000, "custom"
    at.run()
    at.switch_page("pages/attention.py").run()  # kernels compiled, a normal run cached
    assert not at.exception and not at.error
    at.session_state["window"] = "8192"  # 6 layers x 12 x 4k x 8k fp16 captured: far above the fraction below
    torch.cuda.set_per_process_memory_fraction(min(1.0, 1.5 * 2**30 / total))
    try:
        at.run()
        assert not at.exception and any("ran out of memory" in e.value for e in at.error)
        at.session_state["window"] = "64"
        at.run()
        assert not at.exception and not at.error
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


def test_a_16k_document_opens_on_every_page_with_captures_on_the_gpu():
    """The app on a GPU: a 16,384-token document, captures kept on the GPU, every page renders from them."""
    import json

    from apptools import PAGES, new_app

    from lfviz.app import cache as app_cache

    doc = "Long documents need linear attention, and global tokens see all of it. " * 1300
    at = new_app(600)
    at.session_state["model"], at.session_state["document"], at.session_state["sample"] = "embedded-16k", doc, "custom"
    at.run()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception and not at.error, (page, at.exception, [e.value for e in at.error])
    res = app_cache._cached_run("embedded-16k", doc, json.dumps(lfviz.AttentionConfig(global_tokens=(0,)).to_dict()),
                                (), None, True)
    assert res.n == 16384 and res.capture.band(0).is_cuda and res.capture.band(0).dtype == torch.float16


@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_compiled_flexattention_equals_the_chunked_path(causal):
    """BigBird's GPU path (a FlexAttention block mask from its block table, compiled) against the chunked path."""
    from lfviz.attention import sparse

    g = torch.Generator(device="cuda").manual_seed(0)
    H, n, hd = 4, 2048, 64
    q, k, v = (torch.randn(H, n, hd, device="cuda", generator=g) for _ in range(3))
    pattern = sparse.BigBirdPattern(block=64, num_random=3, seed=1)
    got = sparse.bigbird_flex(q, k, v, pattern.blocks(0, H, n // 64), 64, hd ** -0.5, causal, compiled=True)
    want = sparse.pattern_attention(q, k, v, pattern.rows(0, k), hd ** -0.5, causal)
    torch.testing.assert_close(got, want, atol=2e-3, rtol=0)
