"""The attention from beyond the window (`fidelity.attention_from_afar`) comes from the probabilities the reference
run computes anyway (one pass over the scores) where that run takes the dense path, and from a second pass over the
layer's queries and keys elsewhere: both ways give the same sums, for encoders and causal LMs, dilated windows,
softcaps (Gemma 2) and sinks (gpt-oss) on a native pattern that mixes full and windowed layers."""
import numpy as np
import pytest
import torch
import transformers as tf

from lfviz.analysis import fidelity
from lfviz.config import AttentionConfig
from lfviz.model.causal_runner import CausalRunner

TEXT = ("The harbour keeper lit the lamp at dusk. Ships came in from the north. The keeper wrote each name in "
        "the log, and the log went to the town hall every spring. Nobody read it until the flood. ") * 3


def far_sums(monkeypatch, runner, text, config, fused):
    """(far (n,), layers done from the run's own probabilities, layers scored again)."""
    made = []
    real = fidelity._FarSums
    monkeypatch.setattr(fidelity, "_FarSums", lambda *a, **kw: made.append(real(*a, **kw)) or made[-1])
    _, far = fidelity.attention_from_afar(runner, text, config, fused=fused)
    monkeypatch.setattr(fidelity, "_FarSums", real)
    return far, made[0].fused, made[0].two_passes


@pytest.mark.parametrize("dilated", [False, True])
def test_far_sums_come_from_the_reference_run_itself(monkeypatch, embedded, tiny_causal, dilated):
    monkeypatch.setattr("lfviz.attention.dense.CHUNK_BYTES", 4 * 12 * 200 * 7)  # several query chunks
    for runner in (embedded, tiny_causal):
        L, H = runner.num_layers, runner.num_heads
        config = (AttentionConfig(window=[4, 16] * (L // 2), dilation=[1, [1, 2, 2, 3] * (H // 4)] * (L // 2))
                  if dilated else AttentionConfig(window=8))
        fused, done, again = far_sums(monkeypatch, runner, TEXT, config, fused=True)
        two_pass, done_before, again_before = far_sums(monkeypatch, runner, TEXT, config, fused=False)
        assert done == list(range(L)) and again == []  # every layer of full attention: no second pass
        assert done_before == [] and again_before == list(range(L))
        np.testing.assert_allclose(fused, two_pass, rtol=1e-5, atol=1e-6)
        assert fused.max() > 0.01


SIZES = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
             max_position_embeddings=256, initializer_range=0.2, pad_token_id=0, num_hidden_layers=2)


def native_runner(kind, tokenizer):
    """A tiny random model trained sparse: layer 0 windowed (8 keys), layer 1 full; softcaps or learned sinks."""
    if kind == "gemma2":
        config = tf.Gemma2Config(**SIZES, sliding_window=8, query_pre_attn_scalar=16, attn_logit_softcapping=2.0,
                                 final_logit_softcapping=3.0, vocab_size=tokenizer.vocab_size,
                                 attn_implementation="eager")
        torch.manual_seed(0)
        model = tf.Gemma2ForCausalLM(config)
    else:
        config = tf.GptOssConfig(**SIZES, sliding_window=8, num_local_experts=4, num_experts_per_tok=2,
                                 vocab_size=tokenizer.vocab_size, attn_implementation="eager")
        torch.manual_seed(0)
        model = tf.GptOssForCausalLM(config)
        with torch.no_grad():
            for layer in model.model.layers:
                layer.self_attn.sinks.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    return CausalRunner(kind, model.eval(), tokenizer, torch.device("cpu"))


@pytest.mark.parametrize("kind", ["gemma2", "gpt_oss"])
def test_softcaps_and_sinks_on_a_native_pattern_of_full_and_windowed_layers(monkeypatch, bert_tokenizer, kind):
    r = native_runner(kind, bert_tokenizer)
    assert r.trained_sparse
    config = AttentionConfig(window=4)
    fused, done, again = far_sums(monkeypatch, r, TEXT, config, fused=True)
    two_pass, _, _ = far_sums(monkeypatch, r, TEXT, config, fused=False)
    assert done == [1] and again == [0]  # the full layer from the run, the windowed one scored again
    np.testing.assert_allclose(fused, two_pass, rtol=1e-5, atol=1e-6)
    assert fused.max() > 0.01
