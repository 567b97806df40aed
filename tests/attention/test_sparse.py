"""Running another pattern on the same weights (`lfviz.attention.sparse`): the chunked path equals a dense
softmax weighted by the pattern's counts; with Hugging Face's own buckets it reproduces Reformer's LSH attention
output (rounds combined as one softmax, self excluded); the embedded model and a causal LM run under BigBird and
LSH, measured against full attention."""
import pytest
import torch

from lfviz.analysis.fidelity import full_attention, measure
from lfviz.attention import sparse
from lfviz.attention.sparse import BigBirdPattern, LSHPattern, attention_pattern, lsh_rows, pattern_attention

from test_lsh import B, C, D, H, N, R, hf_model


def dense_reference(q, k, v, counts, scale, causal=False):
    n = q.shape[1]
    if causal:
        counts = counts * torch.ones(n, n, dtype=counts.dtype).tril()
        empty = counts.sum(-1) == 0
        counts = counts + torch.diag_embed(empty.to(counts.dtype))
    scores = (q @ k.transpose(1, 2)) * scale + counts.float().log()
    return torch.softmax(scores, -1) @ v


@pytest.mark.parametrize("pattern", [BigBirdPattern(block=4, num_random=2, seed=3), LSHPattern(4, 3, 8, seed=1),
                                     LSHPattern(2, 1, 5, seed=2)])
@pytest.mark.parametrize("causal", [False, True])
def test_chunked_path_equals_the_dense_weighted_softmax(pattern, causal, monkeypatch):
    monkeypatch.setattr(sparse, "CHUNK_BYTES", 4 * 3 * 45 * 7)  # 7 rows per chunk: chunks that do not divide n
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 45, 8, generator=g) for _ in range(3))
    rows = pattern.rows(2, k)
    counts = rows(0, 45)
    assert counts.shape == (3, 45, 45) and (counts.sum(-1) > 0).all()
    got = pattern_attention(q, k, v, rows, 0.3, causal)
    torch.testing.assert_close(got, dense_reference(q, k, v, counts, 0.3, causal), atol=1e-5, rtol=0)


def test_lsh_with_hugging_faces_buckets_reproduces_its_output():
    model = hf_model()
    seen = []
    hook = lambda m, args, kwargs, out: seen.append((m, kwargs.get("hidden_states", args[0] if args else None), out))
    handle = model.encoder.layers[0].attention.self_attention.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(torch.randint(5, 100, (1, N), generator=torch.Generator().manual_seed(3)))
    finally:
        handle.remove()
    module, hidden, out = seen[0]
    heads = lambda x: x[0].view(N, H, D).transpose(0, 1)
    qk, v = heads(module.query_key(hidden)), heads(module.value(hidden))
    key = qk * torch.rsqrt(qk.pow(2).mean(-1, keepdim=True) + 1e-6) / D ** 0.5  # HF's key normalisation
    buckets = out.buckets[0] - B * torch.arange(R).view(1, R, 1)  # HF's buckets, round offsets removed
    mine = pattern_attention(qk, key, v, lsh_rows(buckets, C), scale=1.0)
    torch.testing.assert_close(mine.transpose(0, 1).reshape(1, N, H * D), out.hidden_states, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pattern", [BigBirdPattern(block=16, num_random=2), LSHPattern(8, 2, 32)])
def test_models_run_under_other_patterns(embedded, tiny_causal, pattern):
    text = "The tenant pays rent monthly. The landlord repairs the roof and the gutters. " * 10
    for runner in (embedded, tiny_causal):
        n = len(runner.tokenize(text).input_ids)
        full = runner.run(text, config=full_attention(n), capture=False, output_hidden_states=True)
        with attention_pattern(pattern):
            other = runner.run(text, capture=False, output_hidden_states=True)
        assert torch.isfinite(other.last_hidden_state).all()
        gap = measure(full, other).gap
        assert 0 < abs(gap) < 1  # a real distance, not a broken run (a random causal LM may even do better)
        again = runner.run(text, capture=False, output_hidden_states=True)  # outside the block: Longformer again
        assert not torch.equal(again.last_hidden_state, other.last_hidden_state)
    assert sparse.active() is None


def test_bigbird_on_a_text_too_short_says_what_to_change(embedded):
    with attention_pattern(BigBirdPattern(block=64, num_random=3)), pytest.raises(ValueError, match="smaller block"):
        embedded.run("A short text.", capture=False)


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("causal", [False, True])
def test_bigbird_through_flexattention_equals_the_chunked_path(causal):
    """The GPU's path for BigBird (a block mask from the block table), run here on the CPU uncompiled (the mask on
    every pair); compiled, on a GPU: tests/gpu/test_gpu.py."""
    compiled = False
    import warnings

    g = torch.Generator().manual_seed(0)
    H, n, hd = 2, 300, 16
    q, k, v = (torch.randn(H, n, hd, generator=g) for _ in range(3))
    pattern = BigBirdPattern(block=20, num_random=2, seed=5)
    nb = 15
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = sparse.bigbird_flex(q, k, v, pattern.blocks(0, H, nb), 20, 0.25, causal, compiled=compiled)
    want = pattern_attention(q, k, v, pattern.rows(0, k), 0.25, causal)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
