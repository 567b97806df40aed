"""The causal runner's tiled output head (issue 20: the whole (n, V) fp32 logits were 0.8 GB at 4k tokens; issue
22: rows of 262,144 logits did not stay in cache, so the log-sum-exp and the top-k were passes over memory) equals
the plain computation over the whole logits: losses from an online log-sum-exp, top-k merged tile by tile."""
import pytest
import torch

from lfviz.model.causal_runner import logit_tile, next_token_stats, token_losses


def _plain(logits, ids, k):
    top = logits.topk(k, dim=-1)
    return token_losses(logits, ids), top.indices, (top.values - torch.logsumexp(logits, -1, keepdim=True)).exp()


@pytest.mark.parametrize("V", [50, 5120, 5157])
def test_tiled_losses_and_top_tokens_equal_the_whole_logits(V):
    torch.manual_seed(0)
    n, D, k = 37, 8, 3
    head = torch.nn.Linear(D, V, bias=False)
    hidden, ids = torch.randn(n, D), torch.randint(0, V, (n,))
    with torch.inference_mode():
        want_loss, want_ids, want_p = _plain(head(hidden), ids, k)
        # rows that do not divide n, one row, one block; columns: one tile, tiles that do not divide V, tiles
        # narrower than k (the top k then spans several tiles)
        for rows, cols in ((1, None), (5, 7), (36, 256), (37, 1000), (512, None), (37, 2), (4, V)):
            loss, top_ids, p = next_token_stats(head.weight, hidden, ids, k, rows=rows, cols=cols)
            assert loss.shape == (n,) and torch.isnan(loss[0])
            torch.testing.assert_close(loss[1:], want_loss[1:], rtol=0, atol=1e-5)
            assert torch.equal(top_ids, want_ids), (rows, cols)
            torch.testing.assert_close(p, want_p, rtol=0, atol=1e-6)


def test_top_k_found_when_crowded_in_one_tile_spread_or_in_the_last_narrow_tile():
    torch.manual_seed(1)
    V, D, k, cols = 3000, 4, 5, 256
    w = torch.randn(V, D)
    hidden = torch.eye(D)[[0, 1, 2, 3, 0, 1]]  # row i's logits are column i % 4 of w
    ids = torch.zeros(6, dtype=torch.long)
    w[3 * cols:3 * cols + k, 0] += 10  # row 0: the k largest all in one tile
    w[-3:, 1] += 10  # row 1: in the last tile (3000 = 11 x 256 + 184)
    w[[0, cols, 2 * cols, V - 1, 17], 2] += 10  # row 2: spread, one in the last tile, two in the first
    w[:, 3] = -w[:, 3].abs() - 50  # row 3: all very negative
    want = (hidden @ w.t()).topk(k, dim=-1)
    _, top_ids, p = next_token_stats(w, hidden, ids, k, rows=4, cols=cols)
    assert torch.equal(top_ids, want.indices)
    logits = hidden @ w.t()
    torch.testing.assert_close(p, (want.values - logits.logsumexp(-1, keepdim=True)).exp(), rtol=0, atol=1e-6)


def test_log_sum_exp_merged_across_tiles_with_far_apart_maxima():
    """Tiles whose maxima differ by hundreds (exp would underflow or overflow without the running rescale)."""
    torch.manual_seed(4)
    n, D, V = 9, 6, 1200
    w, hidden, ids = torch.randn(V, D) * 40, torch.randn(n, D) * 3, torch.randint(0, V, (n,))
    w[700:710] *= 8  # one tile far above the others for some rows
    want = token_losses(hidden @ w.t(), ids)
    for cols in (100, 333, V):
        loss, _, _ = next_token_stats(w, hidden, ids, 0, rows=4, cols=cols)
        torch.testing.assert_close(loss[1:], want[1:], rtol=1e-6, atol=1e-4)


def test_start_skips_rows_and_top_k_zero_computes_losses_only():
    """What the layer experiment uses: rows it already has are skipped; no top-k, so the last row is not needed."""
    torch.manual_seed(2)
    n, D, V = 20, 8, 2304
    w, hidden, ids = torch.randn(V, D), torch.randn(n, D), torch.randint(0, V, (n,))
    want = token_losses(hidden @ w.t(), ids)
    loss, top_ids, p = next_token_stats(w, hidden, ids, 0, rows=7, start=6, cols=500)
    assert top_ids.shape == p.shape == (n, 0)
    assert torch.isnan(loss[:7]).all()  # losses of tokens 0..6 need rows up to 5
    torch.testing.assert_close(loss[7:], want[7:], rtol=0, atol=1e-5)
    loss, top_ids, p = next_token_stats(w, hidden, ids, 2, rows=7, start=6, cols=500)
    assert (top_ids[:6] == -1).all() and torch.equal(top_ids[6:], (hidden @ w.t()).topk(2, dim=-1).indices[6:])


def test_the_familys_logit_mechanisms_and_the_bias_apply_before_the_statistics():
    torch.manual_seed(3)
    n, D, V, k = 12, 8, 1536, 4
    w, hidden, ids = torch.randn(V, D) * 3, torch.randn(n, D), torch.randint(0, V, (n,))
    bias = torch.randn(V)
    cap = lambda logits: (logits / 5).tanh() * 5  # Gemma 2's final softcap
    want_loss, want_ids, want_p = _plain(cap(hidden @ w.t() + bias), ids, k)
    loss, top_ids, p = next_token_stats(w, hidden, ids, k, rows=5, post=cap, bias=bias, cols=300)
    torch.testing.assert_close(loss[1:], want_loss[1:], rtol=0, atol=1e-5)
    torch.testing.assert_close(p, want_p, rtol=0, atol=1e-6)
    assert torch.equal(top_ids[:, 0], want_ids[:, 0])  # capped logits tie often lower down; the first is unique


def test_more_top_tokens_than_words_is_refused_and_the_default_tile_stays_small():
    w, hidden, ids = torch.randn(10, 4), torch.randn(3, 4), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="at most 10"):
        next_token_stats(w, hidden, ids, 11)
    rows, cols = logit_tile(2000, 262_144)  # Gemma 3 at 2,000 tokens: one block of rows, a few MB of logits
    assert rows == 2000 and cols % 256 == 0 and rows * cols * 4 <= 32 * 2**20
