"""The attention from beyond the window (`fidelity.attention_from_afar`) comes from what the reference run computes
anyway where that run takes the dense path (each query's log-sum-exp on its flash path, the probabilities where a
softcap or sinks keep it on the chunked softmax), and from a second pass over the layer's queries and keys
elsewhere: every way gives the same sums, for encoders and causal LMs, dilated windows, softcaps (Gemma 2) and sinks
(gpt-oss) on a native pattern that mixes full and windowed layers, and Gemma 3's full layers."""
import numpy as np
import pytest
import torch
import transformers as tf

from lfviz.analysis import fidelity
from lfviz.config import AttentionConfig
from lfviz.model.causal_runner import CausalRunner

TEXT = ("The harbour keeper lit the lamp at dusk. Ships came in from the north. The keeper wrote each name in "
        "the log, and the log went to the town hall every spring. Nobody read it until the flood. ") * 3


def far_sums(monkeypatch, runner, text, config, fused, rows=None):
    """(far (n,), layers done from the run itself, layers scored again); rows: a list that gets the layers done
    from the log-sum-exp (the flash path)."""
    made = []
    real = fidelity._FarSums
    monkeypatch.setattr(fidelity, "_FarSums", lambda *a, **kw: made.append(real(*a, **kw)) or made[-1])
    _, far = fidelity.attention_from_afar(runner, text, config, fused=fused)
    monkeypatch.setattr(fidelity, "_FarSums", real)
    if rows is not None:
        rows.extend(made[0].from_rows)
    return far, made[0].fused, made[0].two_passes


@pytest.mark.parametrize("dilated", [False, True])
def test_far_sums_come_from_the_reference_run_itself(monkeypatch, embedded, tiny_causal, dilated):
    monkeypatch.setattr("lfviz.attention.dense.CHUNK_BYTES", 4 * 12 * 200 * 7)  # several query chunks
    for runner in (embedded, tiny_causal):
        L, H = runner.num_layers, runner.num_heads
        config = (AttentionConfig(window=[4, 16] * (L // 2), dilation=[1, [1, 2, 2, 3] * (H // 4)] * (L // 2))
                  if dilated else AttentionConfig(window=8))
        rows = []
        fused, done, again = far_sums(monkeypatch, runner, TEXT, config, fused=True, rows=rows)
        two_pass, done_before, again_before = far_sums(monkeypatch, runner, TEXT, config, fused=False)
        assert done == list(range(L)) and again == []  # every layer of full attention: no second pass
        assert rows == list(range(L))  # from the flash path's log-sum-exp
        assert done_before == [] and again_before == list(range(L))
        np.testing.assert_allclose(fused, two_pass, rtol=1e-5, atol=1e-6)
        assert fused.max() > 0.01


def test_keys_that_only_the_band_reaches_get_exactly_nothing_from_afar(monkeypatch, embedded, tiny_causal):
    """Where every query that sees a key is in the band (a window covering most of the text; causal: the last
    keys), the sum is exactly 0 on every path, not the rounding left by subtracting the band from the column."""
    for runner in (embedded, tiny_causal):
        n = len(runner.tokenize(TEXT).input_ids)
        config = AttentionConfig(window=2 * (n - 20))  # one_sided n - 20: keys 19..n-20 see every query
        fused, _, _ = far_sums(monkeypatch, runner, TEXT, config, fused=True)
        two_pass, _, _ = far_sums(monkeypatch, runner, TEXT, config, fused=False)
        zero = two_pass == 0
        assert zero.sum() >= (20 if runner.causal else n - 40)
        assert (fused[zero] == 0).all() and (fused[~zero] > 0).all()
        np.testing.assert_allclose(fused, two_pass, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("spread", [5.0, 200.0])  # 200: past what the values can carry, -lse in the exponent
def test_column_sums_are_the_probabilities_summed_over_queries(causal, spread):
    g = torch.Generator().manual_seed(1)
    H, n, hd = 3, 57, 8
    qs, k = torch.randn(H, n, hd, generator=g), torch.randn(H, n, hd, generator=g)
    qs[:, 7] *= spread  # one query whose log-sum-exp stands far from the others'
    scores = qs @ k.transpose(1, 2)
    if causal:
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    lse = scores.logsumexp(-1)
    assert float((lse.max(1).values - lse.min(1).values).max()) > (128 if spread > 100 else 0)
    want = scores.double().softmax(-1).sum(1)  # (H, n)
    torch.testing.assert_close(fidelity.column_sums(qs, k, lse, causal).double(), want, rtol=2e-5, atol=1e-6)


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
    rows = []
    fused, done, again = far_sums(monkeypatch, r, TEXT, config, fused=True, rows=rows)
    two_pass, _, _ = far_sums(monkeypatch, r, TEXT, config, fused=False)
    assert done == [1] and again == [0]  # the full layer from the run, the windowed one scored again
    assert rows == []  # its softcap or sinks keep the full layer on the chunked softmax: from its probabilities
    np.testing.assert_allclose(fused, two_pass, rtol=1e-5, atol=1e-6)
    assert fused.max() > 0.01


def test_gemma3_full_layers_come_from_the_flash_path(monkeypatch, tiny_gemma3):
    """Gemma 3 (trained sparse, no softcap): its native reference's full layers take the flash path and hand over
    their log-sum-exp, its sliding layers are scored again."""
    config = AttentionConfig(window=4)
    rows = []
    fused, done, again = far_sums(monkeypatch, tiny_gemma3, TEXT, config, fused=True, rows=rows)
    two_pass, _, _ = far_sums(monkeypatch, tiny_gemma3, TEXT, config, fused=False)
    assert done == rows == [2, 5] and again == [0, 1, 3, 4]
    np.testing.assert_allclose(fused, two_pass, rtol=1e-5, atol=1e-6)
    assert fused.max() > 0.01


def test_far_step_reads_every_query_up_to_far_rows():
    assert fidelity.far_step(1) == fidelity.far_step(fidelity.FAR_ROWS) == 1
    assert fidelity.far_step(fidelity.FAR_ROWS + 1) == 2 and fidelity.far_step(3921) == -(-3921 // fidelity.FAR_ROWS)
    assert 3921 // fidelity.far_step(3921) <= fidelity.FAR_ROWS


def _sampled_far_by_dense(runner, text, config, step, causal):
    """The far sums of the queries 0, step, 2 step, ... alone, times step, from the captured full-attention
    probabilities and the mask predicate."""
    from lfviz.attention.layout import weights_to_dense
    from lfviz.attention.mask import dense_mask

    full = runner.run(text, config=fidelity.full_attention(10_000), capture=True)
    specs = config.resolve(runner.num_layers, runner.num_heads)
    total = torch.zeros(full.n, dtype=torch.float64)
    for layer in full.capture.captured_layers:
        probs = weights_to_dense(full.capture.weights(layer)).double()[:, ::step]  # (H, sampled, n)
        near = dense_mask(specs[layer], full.n, causal=causal)[:, ::step]
        total += (probs * ~near).sum((0, 1)) * step / probs.shape[0]
    return total.numpy()


@pytest.mark.parametrize("step", [2, 5])
def test_far_sums_from_every_step_th_query(monkeypatch, embedded, tiny_causal, step):
    """Past FAR_ROWS tokens the sums read every step-th query (times step): the column sums and the band's part over
    those queries alone, the same on the flash path, the chunked probabilities and the second pass."""
    monkeypatch.setattr("lfviz.attention.dense.CHUNK_BYTES", 4 * 12 * 200 * 7)  # several query chunks
    for runner in (embedded, tiny_causal):
        L, H = runner.num_layers, runner.num_heads
        config = AttentionConfig(window=[4, 16] * (L // 2), dilation=[1, [1, 2, 2, 3] * (H // 4)] * (L // 2))
        want = _sampled_far_by_dense(runner, TEXT, config, step, runner.causal)
        _, far = fidelity.attention_from_afar(runner, TEXT, config, step=step)
        _, two_pass = fidelity.attention_from_afar(runner, TEXT, config, step=step, fused=False)
        _, every = fidelity.attention_from_afar(runner, TEXT, config, step=1)
        np.testing.assert_allclose(far, want, atol=1e-4)
        np.testing.assert_allclose(two_pass, want, atol=1e-4)
        assert np.abs(far - every).max() > 1e-3  # a sample, not every query
        assert np.corrcoef(far, every)[0, 1] > 0.9  # of the same sums


@pytest.mark.parametrize("kind", ["gemma2", "gpt_oss"])
def test_far_sums_from_every_step_th_query_under_softcaps_and_sinks(monkeypatch, bert_tokenizer, kind):
    """The chunked probabilities' path (softcaps, sinks) and the windowed layer's second pass sample the same rows."""
    r = native_runner(kind, bert_tokenizer)
    fused, done, again = far_sums(monkeypatch, r, TEXT, AttentionConfig(window=4), fused=True)
    for step in (3, 4):
        made = []
        real = fidelity._FarSums
        monkeypatch.setattr(fidelity, "_FarSums", lambda *a, **kw: made.append(real(*a, **kw)) or made[-1])
        _, sampled = fidelity.attention_from_afar(r, TEXT, AttentionConfig(window=4), step=step)
        _, two_pass = fidelity.attention_from_afar(r, TEXT, AttentionConfig(window=4), step=step, fused=False)
        monkeypatch.setattr(fidelity, "_FarSums", real)
        assert made[0].fused == [1] and made[0].two_passes == [0] and made[0].step == step
        np.testing.assert_allclose(sampled, two_pass, rtol=1e-5, atol=1e-6)
        assert np.abs(sampled - fused).max() > 1e-4


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("spread", [5.0, 200.0])
@pytest.mark.parametrize("step", [3, 8])
def test_column_sums_over_every_step_th_query(causal, spread, step):
    g = torch.Generator().manual_seed(2)
    H, n, hd = 3, 57, 8
    qs, k = torch.randn(H, n, hd, generator=g), torch.randn(H, n, hd, generator=g)
    qs[:, 6] *= spread  # a sampled query (step 3) whose log-sum-exp stands far from the others'
    scores = qs @ k.transpose(1, 2)
    if causal:
        scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    lse = scores.logsumexp(-1)
    want = scores.double().softmax(-1)[:, ::step].sum(1)  # (H, n): keys after the last sampled query get 0 (causal)
    got = fidelity.column_sums(qs[:, ::step], k, lse[:, ::step], causal, step).double()
    torch.testing.assert_close(got, want, rtol=2e-5, atol=1e-6)
    if causal:
        assert (got[:, (n - 1) // step * step + 1:] == 0).all()
