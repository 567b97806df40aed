"""What some of today's LLMs do to attention logits besides the mask, written once for every path.

- Soft-capping (Gemma 2's `attn_logit_softcapping`): a scaled score s becomes `c * tanh(s / c)`, before the mask
  and the softmax, so no logit leaves (-c, c).
- Learned sinks (gpt-oss's `sinks`, one logit per head): the sink logit joins every row's softmax denominator and
  its column is then dropped, so a row's weights sum to 1 minus the sink's share ("sink mass"), and the output
  is that much shorter. With the row's log-sum-exp L over its keys and the sink logit t, the share is
  exp(t - logaddexp(L, t)) = sigmoid(t - L).

The blocked kernel, FlexAttention (softcap as a score_mod, the sink from the log-sum-exp), the dense path, the
global rows and the dense reference all call these two functions or follow the formula above.
"""
from __future__ import annotations

import torch


def soft_cap(scores: torch.Tensor, cap: float | None, inplace: bool = False) -> torch.Tensor:
    """`cap * tanh(scores / cap)`, or `scores` unchanged when cap is None. inplace: overwrite `scores` (the
    kernels' fresh score blocks: no extra pass over memory for a new tensor)."""
    if cap is None:
        return scores
    return scores.div_(cap).tanh_().mul_(cap) if inplace else torch.tanh(scores / cap) * cap


def softmax_with_sink(scores: torch.Tensor, sinks: torch.Tensor | None, head_dim: int = -4, inplace: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Softmax over the last axis with one extra per-head logit in the denominator, then dropped.

    scores: fp32 (..., H, ..., K) with the head axis at `head_dim` (counted from the end, default -4 for the
    blocked kernel's (Bt, h, nc, B, K)); sinks: (H,) or None, or already shaped to broadcast against scores
    (as many dimensions; `head_dim` is then unused). Returns probs of the same shape (rows sum to 1 - the
    sink's share) and the share (..., H, ..., ) without the last axis; (softmax, None) when sinks is None.
    inplace: the probabilities overwrite `scores`. Same arithmetic as a softmax over [scores, sink] (the row's
    maximum including the sink is subtracted first), without concatenating a column."""
    if sinks is None:
        return torch.softmax(scores, dim=-1), None
    if sinks.dim() == scores.dim():  # already shaped to broadcast (e.g. grouped heads: (1, Hkv, 1, g, 1, 1))
        sink = sinks.to(scores.dtype)
    else:
        shape = [1] * scores.dim()
        shape[head_dim] = sinks.shape[0]
        sink = sinks.to(scores.dtype).view(shape)  # broadcasts over every row of its head
    top = torch.maximum(scores.amax(-1, keepdim=True), sink)  # (..., 1): finite even for a row of -inf
    e = scores.sub_(top).exp_() if inplace else (scores - top).exp()
    rest = (sink - top).exp()  # the sink's unnormalised weight
    denom = e.sum(-1, keepdim=True) + rest
    return e.div_(denom), (rest / denom)[..., 0]


def sink_share(lse: torch.Tensor, sinks: torch.Tensor, head_dim: int = 0) -> torch.Tensor:
    """The sink's share of each row given the row's log-sum-exp over its keys (lse fp32, head axis `head_dim`)."""
    shape = [1] * lse.dim()
    shape[head_dim] = sinks.shape[0]
    return torch.sigmoid(sinks.float().view(shape) - lse)
