"""The causal runner's chunked output head (issue 20: the whole (n, V) fp32 logits were 0.8 GB at 4k tokens and
three copies were alive at once) equals the plain computation over the whole logits; so does its two-stage top-k
(issue 22: a partial sort of 262,144 logits per row was seconds of Gemma 3's run)."""
import pytest
import torch

from lfviz.model.causal_runner import TOP_CHUNK, next_token_stats, token_losses, top_k_rows


def _plain(logits, ids, k):
    top = logits.topk(k, dim=-1)
    return token_losses(logits, ids), top.indices, (top.values - torch.logsumexp(logits, -1, keepdim=True)).exp()


@pytest.mark.parametrize("V", [50, 20 * TOP_CHUNK, 20 * TOP_CHUNK + 37])  # plain sort; two stages; and a tail
def test_chunked_losses_and_top_tokens_equal_the_whole_logits(V):
    torch.manual_seed(0)
    n, D, k = 37, 8, 3
    head = torch.nn.Linear(D, V, bias=False)
    hidden, ids = torch.randn(n, D), torch.randint(0, V, (n,))
    with torch.inference_mode():
        want_loss, want_ids, want_p = _plain(head(hidden), ids, k)
        for rows in (1, 5, 36, 37, 512):  # chunks that do not divide n, one row, and one chunk
            loss, top_ids, p = next_token_stats(head.weight, hidden, ids, k, rows=rows)
            assert loss.shape == (n,) and torch.isnan(loss[0])
            torch.testing.assert_close(loss[1:], want_loss[1:], rtol=0, atol=1e-5)
            assert torch.equal(top_ids, want_ids)
            torch.testing.assert_close(p, want_p, rtol=0, atol=1e-6)


def test_two_stage_top_k_finds_values_crowded_in_one_chunk_or_the_tail():
    torch.manual_seed(1)
    V, k = 30 * TOP_CHUNK + 11, 5
    logits = torch.randn(6, V)
    logits[0, 3 * TOP_CHUNK:3 * TOP_CHUNK + k] += 10  # the k largest all in one chunk
    logits[1, -3:] += 10  # in the columns past the last whole chunk
    logits[2, [0, TOP_CHUNK, 2 * TOP_CHUNK, V - 1, 17]] += 10  # spread, one in the tail
    logits[3] = -logits[3].abs()  # all negative
    values, idx = top_k_rows(logits, k)
    want = logits.topk(k, dim=-1)
    assert torch.equal(idx, want.indices) and torch.equal(values, want.values)


def test_start_skips_rows_and_top_k_zero_computes_losses_only():
    """What the layer experiment uses: rows it already has are skipped; no top-k, so the last row is not needed."""
    torch.manual_seed(2)
    n, D, V = 20, 8, 9 * TOP_CHUNK
    w, hidden, ids = torch.randn(V, D), torch.randn(n, D), torch.randint(0, V, (n,))
    want = token_losses(hidden @ w.t(), ids)
    loss, top_ids, p = next_token_stats(w, hidden, ids, 0, rows=7, start=6)
    assert top_ids.shape == p.shape == (n, 0)
    assert torch.isnan(loss[:7]).all()  # losses of tokens 0..6 need rows up to 5
    torch.testing.assert_close(loss[7:], want[7:], rtol=0, atol=1e-5)
    loss, top_ids, p = next_token_stats(w, hidden, ids, 2, rows=7, start=6)
    assert (top_ids[:6] == -1).all() and torch.equal(top_ids[6:], (hidden @ w.t()).topk(2, dim=-1).indices[6:])


def test_the_familys_logit_mechanisms_apply_before_the_statistics():
    torch.manual_seed(3)
    n, D, V, k = 12, 8, 6 * TOP_CHUNK, 4
    w, hidden, ids = torch.randn(V, D) * 3, torch.randn(n, D), torch.randint(0, V, (n,))
    cap = lambda logits: (logits / 5).tanh() * 5  # Gemma 2's final softcap
    want_loss, want_ids, want_p = _plain(cap(hidden @ w.t()), ids, k)
    loss, top_ids, p = next_token_stats(w, hidden, ids, k, rows=5, post=cap)
    torch.testing.assert_close(loss[1:], want_loss[1:], rtol=0, atol=1e-5)
    torch.testing.assert_close(p, want_p, rtol=0, atol=1e-6)
    assert torch.equal(top_ids[:, 0], want_ids[:, 0])  # capped logits tie often lower down; the first is unique
