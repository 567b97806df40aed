"""Hugging Face causal LMs (tiny random Llama, Mistral and Qwen2 built here, grouped-query attention) under lfviz's
causal Longformer pattern: equal to HF's own forward with full attention, to HF eager given the equivalent
additive 4D mask (sliding window + sinks), and to the dense reference from the mask predicate for dilation."""
import pytest
import torch
from transformers import (AttentionInterface, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

from lfviz.attention.layout import weights_to_dense
from lfviz.attention.mask import dense_mask
from lfviz.attention.reference import reference_attention
from lfviz.config import AttentionConfig
from lfviz.model.capture import CaptureSession
from lfviz.model.causal_lm import ATTENTION, longformer_pattern

TOL = 1e-4
SIZES = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=512)
MODELS = {"llama": (LlamaConfig, LlamaForCausalLM), "mistral": (MistralConfig, MistralForCausalLM),
          "qwen2": (Qwen2Config, Qwen2ForCausalLM)}


def tiny(kind: str, attn: str = "eager", **sizes):
    config_cls, model_cls = MODELS[kind]
    torch.manual_seed(0)
    extra = {"sliding_window": None} if kind in ("mistral", "qwen2") else {}
    return model_cls(config_cls(**{**SIZES, **sizes}, **extra, attn_implementation=attn)).eval()


def ids(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, SIZES["vocab_size"], (1, n), generator=torch.Generator().manual_seed(seed))


def lfviz_logits(model, x, config: AttentionConfig, capture=None):
    model.set_attn_implementation(ATTENTION)
    specs = config.resolve(SIZES["num_hidden_layers"], SIZES["num_attention_heads"])
    with torch.no_grad(), longformer_pattern(specs, config.global_tokens, capture):
        return model(x).logits


def additive(mask: torch.Tensor) -> torch.Tensor:
    """(H, n, n) bool -> (1, H, n, n) float: 0 where attended, -inf elsewhere (a bool mask is added as 0/1 by HF
    eager: silently wrong)."""
    return torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))[None]


@pytest.mark.parametrize("kind", list(MODELS))
def test_full_attention_equals_hugging_face(kind):
    """A window covering the text and no global token is plain causal attention: HF's own forward (sdpa)."""
    x = ids(37)
    want = tiny(kind, "sdpa")(x).logits
    got = lfviz_logits(tiny(kind), x, AttentionConfig(window=2 * 37))
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", list(MODELS))
def test_sliding_window_with_sinks_equals_eager_with_the_4d_mask(kind):
    n, cfg = 45, AttentionConfig(window=8, global_tokens=(0, 1, 2, 3))
    x = ids(n, seed=1)
    spec = cfg.resolve(2, 4)[0]
    mask = dense_mask(spec, n, cfg.global_tokens, causal=True)[:1]  # every head alike with dilation 1
    with torch.no_grad():
        want = tiny(kind)(x, attention_mask=additive(mask)).logits
    got = lfviz_logits(tiny(kind), x, cfg)
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)
    wide = lfviz_logits(tiny(kind), x, AttentionConfig(window=2 * n))
    assert (got - wide).abs().max() > 1e-3  # the window and sinks changed the predictions


def dense_reference(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
    """The plain path for the test: every head's dense mask from the predicate (`reference_attention`)."""
    pattern = __import__("lfviz.model.causal_lm", fromlist=["_local"])._local.pattern
    H = query.shape[1]
    k = key[0].repeat_interleave(H // key.shape[1], 0)
    v = value[0].repeat_interleave(H // value.shape[1], 0)
    out, _ = reference_attention(query[0], k, v, query[0], k, v, pattern.specs[module.layer_idx],
                                 pattern.global_tokens, causal=True, scale=scaling)
    return out.transpose(0, 1)[None], None


AttentionInterface.register("lfviz_test_dense_reference", dense_reference)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("config", [
    AttentionConfig(window=6, dilation=2, global_tokens=(0,)),
    AttentionConfig(window=[4, 10], dilation=[[1, 2, 3, 1], 3], global_tokens=(0, 17)),
    AttentionConfig(window=100, dilation=[1, [4, 1, 1, 2]]),
])
def test_dilation_equals_the_dense_reference(kind, config):
    n = 41
    x = ids(n, seed=2)
    model = tiny(kind)
    got = lfviz_logits(model, x, config)
    model.set_attn_implementation("lfviz_test_dense_reference")
    specs = config.resolve(2, 4)
    with torch.no_grad(), longformer_pattern(specs, config.global_tokens):
        want = model(x).logits
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)


def test_captured_rows_sum_to_one_per_query_head():
    n, cfg = 33, AttentionConfig(window=8, dilation=[1, [1, 2, 1, 3]], global_tokens=(0, 1))
    session = CaptureSession(None, torch.float32, None)
    lfviz_logits(tiny("llama"), ids(n, seed=3), cfg, session)
    assert session.capture.captured_layers == [0, 1]
    for layer in (0, 1):
        w = session.capture.weights(layer)
        assert w.band.shape == (4, n, 9) and w.dilation == ((1, 1, 1, 1) if layer == 0 else (1, 2, 1, 3))
        assert w.causal and w.stored.shape == (4, n, 5) and w.window == 8  # kept: the past half only
        dense = weights_to_dense(w)  # (H, n, n)
        torch.testing.assert_close(dense.sum(-1), torch.ones(4, n), atol=1e-5, rtol=0)
        assert not torch.triu(dense, diagonal=1).any()  # nothing after the query


def test_key_value_heads_reach_the_causal_kernel_unrepeated(monkeypatch):
    # grouped-query attention: the kernel reads each of the 2 key/value heads once for its 2 query heads; a layer
    # with mixed per-head dilation takes the shared kernel instead, with the heads repeated
    import lfviz.attention.banded as banded
    from lfviz.analysis.headstats import received

    seen = []
    real = banded.causal_band
    monkeypatch.setattr(banded, "causal_band", lambda q, k, *a, **kw: seen.append((q.shape[1], k.shape[1]))
                        or real(q, k, *a, **kw))
    n, cfg = 40, AttentionConfig(window=8, dilation=[2, [1, 2, 1, 3]], global_tokens=(0, 1))
    session = CaptureSession(None, torch.float32, None)
    lfviz_logits(tiny("llama"), ids(n, seed=4), cfg, session)
    assert seen == [(4, 2)]  # layer 0 only (dilation 2 for every head): 4 query heads, 2 key/value heads
    w = session.capture.weights(0)
    assert w.received is None  # column sums are derived on read, not summed during the run
    torch.testing.assert_close(received(w), weights_to_dense(w).sum(1), atol=1e-5, rtol=0)


def test_running_without_a_pattern_says_what_to_do():
    model = tiny("llama")
    model.set_attn_implementation(ATTENTION)
    with pytest.raises(RuntimeError, match="longformer_pattern"):
        model(ids(5))


def test_loss_increase_and_region_perplexity_compare_two_runs():
    import math

    from lfviz.analysis.compare import loss_increase, region_perplexity
    from lfviz.analysis.presets import preset_positions
    from lfviz.model.causal_runner import CausalRunner
    from transformers import AutoTokenizer
    from lfviz.model.loading import embedded_model_dir

    runner = CausalRunner("tiny-llama", tiny("llama"), AutoTokenizer.from_pretrained(embedded_model_dir()),
                          torch.device("cpu"))
    x = ids(60, seed=4)[0].tolist()
    full = runner.run(input_ids=x, config=AttentionConfig(window=120), capture=False)
    narrow = runner.run(input_ids=x, config=AttentionConfig(window=4), capture=False)
    sinks = preset_positions("first k tokens (sinks)", full.tokens, k=4)
    assert sinks == (0, 1, 2, 3)
    with_sinks = runner.run(input_ids=x, config=AttentionConfig(window=4, global_tokens=sinks), capture=False)
    up = loss_increase(full, narrow)
    assert math.isnan(up[0]) and all(abs(u) < 1e-5 for u in up[1:4])  # the first tokens see the same keys
    assert max(up[4:]) > 1e-3  # later ones lost context
    assert region_perplexity(full) == pytest.approx(full.predictions.rows[0]["score"])
    losses = full.predictions.token_scores[0]
    assert region_perplexity(full, 10, 20) == pytest.approx(math.exp(sum(losses[10:20]) / 10))
    assert loss_increase(narrow, with_sinks) != [0.0] * 60


def test_sweeps_track_perplexity():
    """The lab's sweeps on a causal LM: the label "perplexity" is tracked; the widest window is full attention."""
    from lfviz.analysis.sweep import sweep_global_position, sweep_window
    from lfviz.model.causal_runner import CausalRunner
    from lfviz.model.loading import embedded_model_dir
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    runner = CausalRunner("tiny-llama", tiny("llama", vocab_size=tokenizer.vocab_size), tokenizer, torch.device("cpu"))
    text = "the quick brown fox jumps over the lazy dog and then " * 4
    full = runner.run(text, config=AttentionConfig(window=1024), capture=False).predictions.summary()["perplexity"]
    rows = sweep_window(runner, text, AttentionConfig(), [2, 8, 1024], "perplexity")
    assert [r["window"] for r in rows] == [2, 8, 1024] and rows[-1]["score"] == pytest.approx(full, rel=1e-5)
    assert rows[0]["score"] != pytest.approx(full)  # a 1-token window predicts the text differently
    cfg = AttentionConfig(window=4, global_tokens=(0,))
    moved = sweep_global_position(runner, text, cfg, [5, 20], "perplexity", moving=0)
    assert [r["position"] for r in moved] == [5, 20] and all(r["score"] > 1 for r in moved)
    assert moved[0]["score"] == pytest.approx(runner.run(text, config=cfg.replace(global_tokens=(5,)),
                                                         capture=False).predictions.summary()["perplexity"])
