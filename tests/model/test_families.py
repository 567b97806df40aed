"""Today's causal LMs under their own (native) pattern: tiny random models of every family in lfviz's family table,
built from transformers' config classes (no download), saved to a folder and loaded with `load_runner`. Under the
native pattern lfviz's last hidden state equals Hugging Face's eager forward within 1e-4 and its perplexity within
0.1% (fp32), with grouped-query attention, softcaps (Gemma 2), learned sinks (gpt-oss), a Gemma 3 interleave, a
Qwen2 `max_window_layers` split and a logit scale (Cohere2); global (sink) tokens on top of the native pattern equal
HF eager given the equivalent additive 4D mask per layer type. Families lfviz cannot run exactly are refused."""
import json
import math

import pytest
import torch
import transformers as tf

import lfviz
from lfviz.attention.mask import dense_mask
from lfviz.config import AttentionConfig, LayerSpec
from lfviz.model import families
from lfviz.model.causal_runner import CausalRunner
from lfviz.textspec import config_from_text, config_to_text

TOL = 1e-4
N = 40  # tokens: longer than every sliding window below, so the pattern matters
BASE = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, initializer_range=0.2, pad_token_id=0)  # large weights: softcaps, windows bite

# family -> (config class, model class, config arguments, HF's sliding window S of each layer (None = full))
FAMILY_MODELS = {
    "llama": (tf.LlamaConfig, tf.LlamaForCausalLM, dict(num_hidden_layers=2), [None, None]),
    "mistral": (tf.MistralConfig, tf.MistralForCausalLM, dict(num_hidden_layers=2, sliding_window=8), [8, 8]),
    "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM,
              dict(num_hidden_layers=4, use_sliding_window=True, sliding_window=6, max_window_layers=2),
              [None, None, 6, 6]),
    "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM,
              dict(num_hidden_layers=3, head_dim=16, use_sliding_window=True, sliding_window=7, max_window_layers=1),
              [None, 7, 7]),
    "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM,
               dict(num_hidden_layers=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
                    attn_logit_softcapping=2.0, final_logit_softcapping=3.0), [8, None]),
    "gemma3_text": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM,
                    dict(num_hidden_layers=6, head_dim=16, query_pre_attn_scalar=16, sliding_window=5,
                         sliding_window_pattern=3), [5, 5, None, 5, 5, None]),
    "gpt_oss": (tf.GptOssConfig, tf.GptOssForCausalLM,
                dict(num_hidden_layers=2, head_dim=16, sliding_window=8, num_local_experts=4, num_experts_per_tok=2),
                [8, None]),
    "cohere2": (tf.Cohere2Config, tf.Cohere2ForCausalLM, dict(num_hidden_layers=4, sliding_window=6, logit_scale=0.5),
                [6, 6, 6, None]),
    "phi3": (tf.Phi3Config, tf.Phi3ForCausalLM, dict(num_hidden_layers=2, sliding_window=9), [9, 9]),
    "mixtral": (tf.MixtralConfig, tf.MixtralForCausalLM,
                dict(num_hidden_layers=2, sliding_window=7, num_local_experts=4, num_experts_per_tok=2), [7, 7]),
    "starcoder2": (tf.Starcoder2Config, tf.Starcoder2ForCausalLM, dict(num_hidden_layers=2, sliding_window=6),
                   [6, 6]),
    "qwen3_moe": (tf.Qwen3MoeConfig, tf.Qwen3MoeForCausalLM,
                  dict(num_hidden_layers=2, head_dim=16, use_sliding_window=True, sliding_window=8, num_experts=4,
                       num_experts_per_tok=2, moe_intermediate_size=32), [8, 8]),
    "ministral": (tf.MinistralConfig, tf.MinistralForCausalLM, dict(num_hidden_layers=2, head_dim=16, sliding_window=9),
                  [9, 9]),
    "olmo3": (tf.Olmo3Config, tf.Olmo3ForCausalLM, dict(num_hidden_layers=4, sliding_window=6), [6, 6, 6, None]),
    "gemma": (tf.GemmaConfig, tf.GemmaForCausalLM, dict(num_hidden_layers=2, head_dim=16), [None, None]),
    "olmo2": (tf.Olmo2Config, tf.Olmo2ForCausalLM, dict(num_hidden_layers=2), [None, None]),
    "smollm3": (tf.SmolLM3Config, tf.SmolLM3ForCausalLM,
                dict(num_hidden_layers=4, use_sliding_window=True, sliding_window=8, no_rope_layer_interval=2),
                [None, 8, None, 8]),
}


def tiny(kind: str, vocab: int, **extra):
    config_cls, model_cls, args, _ = FAMILY_MODELS[kind]
    torch.manual_seed(0)
    model = model_cls(config_cls(**BASE, **args, vocab_size=vocab, attn_implementation="eager", **extra)).eval()
    if kind == "gpt_oss":  # sinks start at 0 in a random model: make them matter
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.sinks.copy_(torch.linspace(-1, 2, layer.self_attn.sinks.numel()))
    return model


@pytest.fixture(scope="module")
def folders(tmp_path_factory, bert_tokenizer):
    """Each family saved as a local folder (safetensors, config.json, the embedded model's tokenizer)."""
    root = tmp_path_factory.mktemp("families")
    out = {}
    for kind in FAMILY_MODELS:
        model = tiny(kind, bert_tokenizer.vocab_size)
        model.save_pretrained(root / kind, safe_serialization=True)
        bert_tokenizer.save_pretrained(root / kind)
        out[kind] = root / kind
    return out


def ids(n: int = N, seed: int = 0) -> torch.Tensor:
    return torch.randint(1000, 30000, (1, n), generator=torch.Generator().manual_seed(seed))


def hf_eager(path, x, attention_mask=None):
    """(last hidden state (n, D), perplexity) of Hugging Face's own eager forward of the saved model."""
    model = tf.AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(x, attention_mask=attention_mask, output_hidden_states=True)
    loss = torch.nn.functional.cross_entropy(out.logits[0, :-1].float(), x[0, 1:])
    return out.hidden_states[-1][0], math.exp(float(loss))


def perplexity(res) -> float:
    return res.predictions.summary()["perplexity"]


@pytest.mark.parametrize("kind", list(FAMILY_MODELS))
def test_native_pattern_equals_hugging_face_eager(kind, folders):
    runner = lfviz.load_runner(str(folders[kind]), device="cpu")
    assert isinstance(runner, CausalRunner) and runner.causal and runner.family.model_type == kind
    want_windows = tuple(2 * (S - 1) if S else 2 * runner.max_tokens for S in FAMILY_MODELS[kind][3])
    assert runner.native_windows == want_windows  # HF's S keys including the query = lfviz window 2 (S - 1)
    assert runner.trained_sparse == any(FAMILY_MODELS[kind][3]) and runner.converted == (not runner.trained_sparse)
    x = ids()
    hidden, ppl = hf_eager(folders[kind], x)
    res = runner.run(input_ids=x[0], capture=False)  # no config: the native pattern (Llama: window 512, full here)
    if runner.trained_sparse:
        assert res.config.is_native and res.config == AttentionConfig.native(runner)
    torch.testing.assert_close(res.last_hidden_state, hidden, atol=TOL, rtol=0)
    assert perplexity(res) == pytest.approx(ppl, rel=1e-3)
    if runner.trained_sparse:  # the windows matter: every layer full is a different model
        full = runner.run(input_ids=x[0], capture=False, config=AttentionConfig(window=2 * N))
        assert (full.last_hidden_state - hidden).abs().max() > 1e-3


def additive(mask: torch.Tensor) -> torch.Tensor:
    """(n, n) bool -> (1, 1, n, n) float: 0 where attended, -inf elsewhere (HF eager adds a bool mask as 0/1)."""
    return torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))[None, None]


@pytest.mark.parametrize("kind", ["mistral", "qwen2", "gemma2", "gemma3_text", "gpt_oss", "cohere2", "olmo3"])
def test_sinks_on_top_of_native_equal_eager_with_the_4d_mask(kind, folders):
    """Global (sink) tokens 0-3 added to the native pattern, against HF eager given each layer type's mask."""
    runner = lfviz.load_runner(str(folders[kind]), device="cpu")
    sinks = (0, 1, 2, 3)
    cfg = AttentionConfig.native(runner, global_tokens=sinks)
    x = ids(seed=1)
    masks = {t: additive(dense_mask(LayerSpec(w, (1,)), N, sinks, causal=True)[0])
             for t, w in zip(families.layer_types(runner.config), runner.native_windows)}
    mask = masks if families.family(runner.config).uses_layer_types else next(iter(masks.values()))
    hidden, ppl = hf_eager(folders[kind], x, mask)
    res = runner.run(input_ids=x[0], config=cfg)
    torch.testing.assert_close(res.last_hidden_state, hidden, atol=TOL, rtol=0)
    assert perplexity(res) == pytest.approx(ppl, rel=1e-3)
    plain = runner.run(input_ids=x[0], capture=False)
    assert (plain.last_hidden_state - hidden).abs().max() > 1e-3  # the sinks changed something


def test_softcaps_and_sinks_are_not_ignored(folders):
    """What the issue measured: without the softcaps (Gemma 2) or the sinks (gpt-oss) lfviz differed from HF."""
    x = ids()
    for kind, drop in (("gemma2", dict(attn_logit_softcapping=None)), ("gemma2", dict(final_logit_softcapping=None)),
                       ("gpt_oss", None)):
        runner = lfviz.load_runner(str(folders[kind]), device="cpu")
        hidden, ppl = hf_eager(folders[kind], x)
        if drop:
            for k, v in drop.items():
                setattr(runner.config, k, v)
                for layer in runner.model.model.layers:  # each attention module keeps its own copy
                    if hasattr(layer.self_attn, k):
                        setattr(layer.self_attn, k, v)
        else:
            with torch.no_grad():
                for layer in runner.model.model.layers:
                    layer.self_attn.sinks.zero_()
        res = runner.run(input_ids=x[0], capture=False)
        changed = (res.last_hidden_state - hidden).abs().max() > 1e-3 or abs(perplexity(res) / ppl - 1) > 1e-2
        assert changed, (kind, drop)


def test_captured_rows_of_a_sink_model_sum_to_one_minus_the_sink_mass(folders):
    runner = lfviz.load_runner(str(folders["gpt_oss"]), device="cpu")
    res = runner.run(input_ids=ids()[0], config=AttentionConfig.native(runner, global_tokens=(0,)))
    for layer in range(runner.num_layers):
        w = res.capture.weights(layer)
        assert w.sink.shape == (runner.num_heads, N) and ((w.sink > 0) & (w.sink < 1)).all()
        rows = w.dense().sum(-1)
        torch.testing.assert_close(rows + w.sink, torch.ones_like(rows), atol=1e-5, rtol=0)
    gemma = lfviz.load_runner(str(folders["gemma2"]), device="cpu").run(input_ids=ids()[0])
    assert gemma.capture.weights(0).sink is None  # no learned sinks: rows sum to 1


def test_native_text_form_round_trips(folders):
    runner = lfviz.load_runner(str(folders["gemma3_text"]), device="cpu")
    cfg = AttentionConfig.native(runner, global_tokens=(0, 1))
    text = config_to_text(cfg)
    assert text == {"window": "native", "dilation": "1", "global": "0, 1"}
    back = config_from_text(text["window"], text["dilation"], text["global"], native=runner.native_windows)
    assert back == cfg and back.is_native
    assert AttentionConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).is_native
    edited = cfg.replace(window=[8] * runner.num_layers)  # the user widens/narrows a layer: no longer native
    assert not edited.is_native and config_to_text(edited)["window"] == "8,8,8,8,8,8"
    assert cfg.replace(global_tokens=()).is_native  # sinks removed: still the native windows
    with pytest.raises(ValueError, match="needs the model"):
        config_from_text("native", "1", "")


def test_layer_type_rules_equal_what_the_config_classes_compute():
    """The family table's own rules (used when a config.json has no layer_types) give what transformers derives."""
    for kind, (config_cls, _, args, S) in FAMILY_MODELS.items():
        cfg = config_cls(**BASE, **args, vocab_size=64)
        want = [families.SLIDING if s else families.FULL for s in S]
        assert families.FAMILIES[kind].fallback(cfg) == want, kind
        assert families.layer_types(cfg) == want, kind


def test_unsupported_families_and_settings_are_refused(tmp_path, bert_tokenizer):
    gpt2 = tmp_path / "gpt2"
    tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).save_pretrained(gpt2)
    with pytest.raises(ValueError, match="causal LMs of these families: Llama"):
        lfviz.load_runner(str(gpt2), device="cpu")
    olmo = tmp_path / "olmo"  # a causal LM of a family not in the table
    tf.OlmoForCausalLM(tf.OlmoConfig(**BASE, num_hidden_layers=1, vocab_size=64)).save_pretrained(olmo)
    with pytest.raises(ValueError, match="not in lfviz's family table"):
        lfviz.load_runner(str(olmo), device="cpu")
    with pytest.raises(ValueError, match="chunked attention"):
        families.family({"model_type": "llama4_text"})
    chunked = tf.Qwen2Config(**BASE, num_hidden_layers=2, vocab_size=64,
                             layer_types=["chunked_attention", "full_attention"])
    with pytest.raises(ValueError, match="chunked"):
        families.native_windows(chunked, 256)
    bidirectional = tf.Gemma3TextConfig(**BASE, num_hidden_layers=2, vocab_size=64, use_bidirectional_attention=True)
    with pytest.raises(ValueError, match="bidirectional"):
        families.native_windows(bidirectional, 256)
    # a folder of a supported family without safetensors is refused before anything is read as pickle
    model = tiny("mistral", 64)
    model.save_pretrained(tmp_path / "bin")
    for f in (tmp_path / "bin").glob("*.safetensors"):
        f.unlink()
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    bert_tokenizer.save_pretrained(tmp_path / "bin")
    with pytest.raises(ValueError, match="safetensors"):
        lfviz.load_runner(str(tmp_path / "bin"), device="cpu")


def test_a_tokenizer_that_starts_with_bos_gets_it(tmp_path):
    """Gemma's tokenizer puts BOS before every text and the model expects it: lfviz reads the text the same way
    (token 0 is BOS, offsets (0, 0)) and equals HF on what its tokenizer gives by default."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = "<unk> <bos> the committee approved budget a sliding window attends to".split()
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tok = tf.PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", unk_token="<unk>")
    tiny("gemma3_text", len(words)).save_pretrained(tmp_path / "g")
    tok.save_pretrained(tmp_path / "g")
    runner = lfviz.load_runner(str(tmp_path / "g"), device="cpu")
    text = "the committee approved the budget a sliding window attends to the budget " * 3
    res = runner.run(text, capture=False)
    x = tok(text, return_tensors="pt")["input_ids"]
    assert res.input_ids == x[0].tolist() and res.input_ids[0] == 1 and res.offsets[0] == (0, 0)
    assert res.offsets[1] == (0, 3)  # "the": offsets still index the text
    hidden, ppl = hf_eager(tmp_path / "g", x)
    torch.testing.assert_close(res.last_hidden_state, hidden, atol=TOL, rtol=0)
    assert perplexity(res) == pytest.approx(ppl, rel=1e-3)


def test_sink_mass_survives_an_export(folders, tmp_path):
    runner = lfviz.load_runner(str(folders["gpt_oss"]), device="cpu")
    res = runner.run(input_ids=ids()[0], config=AttentionConfig.native(runner, global_tokens=(0,)))
    back = lfviz.load_result(res.save(tmp_path / "run.safetensors"))
    for layer in range(runner.num_layers):
        torch.testing.assert_close(back.capture.weights(layer).sink, res.capture.weights(layer).sink, atol=0, rtol=0)
    assert back.config.is_native and back.config == res.config


def test_the_cli_captures_under_the_native_pattern(folders, tmp_path):
    from lfviz.cli import main

    doc = tmp_path / "doc.txt"
    doc.write_text("The committee approved the budget. A sliding window attends to recent tokens only. " * 3)
    out = tmp_path / "run.safetensors"
    assert main(["capture", str(doc), "-o", str(out), "--model", str(folders["gemma2"]), "--window", "native",
                 "--global", "0", "--device", "cpu"]) == 0
    res = lfviz.load_result(out)
    runner = lfviz.load_runner(str(folders["gemma2"]), device="cpu")
    assert res.config.is_native and res.config == AttentionConfig.native(runner, global_tokens=(0,))
    assert main(["capture", str(doc), "-o", str(out), "--window", "7", "--model", "/nonexistent"]) == 2  # odd window


@pytest.mark.parametrize("kind", ["gemma2", "gpt_oss"])
def test_bigbird_and_lsh_refuse_softcaps_and_sinks(kind, folders):
    """Those paths do not implement them: refused with the reason, never a silently different result."""
    from lfviz.attention.sparse import LSHPattern, attention_pattern

    runner = lfviz.load_runner(str(folders[kind]), device="cpu")
    with attention_pattern(LSHPattern(num_buckets=4, chunk=8)), pytest.raises(ValueError, match="softcapping or "
                                                                                                "learned sinks"):
        runner.run(input_ids=ids()[0], capture=False)
