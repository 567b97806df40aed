"""The reference of fidelity, the advisor and the study is the native pattern for a model trained with a sliding
window, and full attention otherwise; what the reference gives from beyond a pattern's window (`attention_from_afar`)
equals Hugging Face's own eager attention weights, softcaps and sinks included."""
import pytest
import torch
import transformers as tf

from lfviz.analysis import fidelity
from lfviz.attention.mask import attends
from lfviz.config import AttentionConfig
from lfviz.model.causal_runner import CausalRunner

SIZES = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
             max_position_embeddings=256, initializer_range=0.2, pad_token_id=0, num_hidden_layers=2)
MODELS = {
    "mistral": (tf.MistralConfig, tf.MistralForCausalLM, dict(sliding_window=8)),
    "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM,
               dict(sliding_window=8, query_pre_attn_scalar=16, attn_logit_softcapping=2.0,
                    final_logit_softcapping=3.0)),
    "gpt_oss": (tf.GptOssConfig, tf.GptOssForCausalLM, dict(sliding_window=8, num_local_experts=4,
                                                           num_experts_per_tok=2)),
    "llama": (tf.LlamaConfig, tf.LlamaForCausalLM, {}),
}
TEXT = ("The committee approved the budget after a long debate. Longformer attends to a sliding window, and "
        "sliding-window language models were trained that way. ") * 2


def runner(kind, tokenizer):
    config_cls, model_cls, extra = MODELS[kind]
    torch.manual_seed(0)
    model = model_cls(config_cls(**SIZES, **extra, vocab_size=tokenizer.vocab_size, attn_implementation="eager"))
    if kind == "gpt_oss":
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.sinks.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    return CausalRunner(kind, model.eval(), tokenizer, torch.device("cpu"))


@pytest.mark.parametrize("kind", ["mistral", "gemma2", "gpt_oss"])
def test_the_reference_of_a_sparse_trained_model_is_its_native_pattern(kind, bert_tokenizer):
    r = runner(kind, bert_tokenizer)
    n = len(r.tokenize(TEXT).input_ids)
    assert r.trained_sparse and fidelity.reference_config(r, n) == AttentionConfig.native(r)
    cfg = AttentionConfig(window=4)  # narrower than the native window 2 * (8 - 1) = 14
    ref, far = fidelity.attention_from_afar(r, TEXT, cfg)
    assert ref.config.is_native and fidelity.reference_name(ref) == "the native pattern"
    torch.testing.assert_close(ref.last_hidden_state, r.run(TEXT, capture=False).last_hidden_state)
    # what the native reference gives from beyond window 4, from HF eager's own weights (sliding mask, softcap, sinks)
    hf = r.model
    hf.set_attn_implementation("eager")
    with torch.no_grad():
        weights = hf(torch.tensor([ref.input_ids]), output_attentions=True).attentions  # (1, H, n, n) per layer
    keys = torch.arange(n)
    near = attends(keys.view(-1, 1), keys.view(1, -1), one_sided=2, dilation=1, is_global=torch.zeros(n, dtype=bool),
                   is_valid=torch.ones(n, dtype=bool), causal=True)
    want = sum(w[0].masked_fill(near, 0).sum(1).mean(0) for w in weights)  # (n,)
    torch.testing.assert_close(torch.as_tensor(far, dtype=torch.float32), want, atol=1e-4, rtol=0)
    got = fidelity.measure(ref, r.run(TEXT, config=cfg, output_hidden_states=True, capture=False))
    assert "perplexity (the native pattern)" in got.document and "native pattern" in got.per_token_label
    assert fidelity.measure(ref, r.run(TEXT, capture=False, output_hidden_states=True)).gap == pytest.approx(0, abs=1e-6)


def test_a_model_trained_with_full_attention_keeps_full_attention(bert_tokenizer):
    r = runner("llama", bert_tokenizer)
    assert not r.trained_sparse and fidelity.reference_config(r, 30) == fidelity.full_attention(30)
    ref, _ = fidelity.attention_from_afar(r, TEXT, AttentionConfig(window=4))
    assert fidelity.reference_name(ref) == "full attention"
    assert "perplexity (full attention)" in fidelity.measure(ref, ref).document


def test_the_advisor_says_which_reference_is_in_force(bert_tokenizer):
    from lfviz.analysis import advisor

    r = runner("mistral", bert_tokenizer)
    said = []
    advice = advisor.advise(r, TEXT, AttentionConfig(window=4), k=1, size=2, compare_presets=False,
                            progress=lambda f, what: said.append(what))
    assert advice.reference == "the native pattern" and "native pattern" in said[0]
    assert advisor.describe_gap("perplexity", 0.5, advice.reference) == "perplexity +50.0% over the native pattern"
