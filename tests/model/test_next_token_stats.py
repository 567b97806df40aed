"""The causal runner's chunked output head (issue 20: the whole (n, V) fp32 logits were 0.8 GB at 4k tokens and
three copies were alive at once) equals the plain computation over the whole logits."""
import torch

from lfviz.model.causal_runner import next_token_stats, token_losses


def test_chunked_losses_and_top_tokens_equal_the_whole_logits():
    torch.manual_seed(0)
    n, D, V, k = 37, 8, 50, 3
    head = torch.nn.Linear(D, V, bias=False)
    hidden, ids = torch.randn(n, D), torch.randint(0, V, (n,))
    with torch.inference_mode():
        logits = head(hidden)  # (n, V): the plain path
        want_loss = token_losses(logits, ids)
        top = logits.topk(k, dim=-1)
        want_p = (top.values - torch.logsumexp(logits, -1, keepdim=True)).exp()
        for rows in (1, 5, 36, 37, 512):  # chunks that do not divide n, one row, and one chunk
            loss, top_ids, p = next_token_stats(head, hidden, ids, k, rows=rows)
            assert loss.shape == (n,) and torch.isnan(loss[0])
            torch.testing.assert_close(loss[1:], want_loss[1:], rtol=0, atol=1e-5)
            assert torch.equal(top_ids, top.indices)
            torch.testing.assert_close(p, want_p, rtol=0, atol=1e-6)
