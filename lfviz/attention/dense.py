"""Full attention without n x n storage: the path `banded.banded_attention` takes when the window covers the text
(no dilation) and no weights are wanted, e.g. the full-attention reference that fidelity compares against.

On a GPU, PyTorch's fused scaled-dot-product attention; on the CPU, query chunks of a plain softmax(q k^T) v (on 2
cores, 12 heads of 32 over 3,921 tokens: 0.71 s against 0.98 s for the CPU's SDPA and 1.7 s for the blocked kernel
at a window that covers the text). Memory: one chunk's (H, C, n) scores.
`observe(observer)`: the probabilities of every chunk, handed to an analysis while the run uses them (fidelity's
attention from beyond the window, computed inside the full-attention reference run instead of a second pass).
Checked against `reference.reference_attention` (tests/attention/test_dense.py).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .logits import soft_cap, softmax_with_sink

CHUNK_BYTES = 32 * 2**20  # fp32 scores per query chunk on the CPU
_local = threading.local()

Observer = Callable[[int, int, torch.Tensor], None]


@contextmanager
def observe(observer: Observer) -> Iterator[None]:
    """Until the block ends, every `dense_attention` call of this thread hands each query chunk's probabilities to
    `observer(s, e, probs)` before multiplying them by the values: probs (H, e - s, n) fp32, queries s..e-1 over
    every key (0 where masked; with sinks, a row sums to 1 minus its sink share). The observer must not change
    probs. Inside the block the chunked softmax runs on a GPU too (SDPA does not give its probabilities).
    Only the calling thread's runs reach the observer: the app's other sessions share the model."""
    previous = getattr(_local, "observer", None)
    _local.observer = observer
    try:
        yield
    finally:
        _local.observer = previous


def is_full(one_sided: int, dilation, n: int) -> bool:
    """Whether a band of `one_sided` keys per side with this dilation is full attention on n tokens."""
    return max(dilation) == 1 and one_sided >= n - 1


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None = None,
                    causal: bool = False, scale: float = 1.0, softcap: float | None = None,
                    sinks: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(scale * q k^T) v over every key (every key at or before the query when causal; only `valid` keys).

    q, k, v: (H, n, hd); valid: (n,) bool or None. Returns (H, n, hd) in q's dtype. Rows of padding queries are
    whatever the softmax gives: the caller zeroes them (as `banded_attention` does).
    softcap, sinks (H,): see `logits.py` (then the chunked softmax runs on the GPU too: SDPA has neither).
    Inside `observe(observer)`: each chunk's probabilities go to the observer too."""
    H, n, hd = q.shape
    observer = getattr(_local, "observer", None)
    if q.device.type == "cuda" and softcap is None and sinks is None and observer is None:
        mask = None
        if valid is not None:
            mask = valid.view(1, 1, n)
            if causal:
                mask = mask & torch.ones(n, n, dtype=torch.bool, device=q.device).tril().view(1, n, n)
        return F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=None if mask is None else mask[None],
                                              is_causal=causal and mask is None, scale=scale)[0]
    out = torch.empty_like(q)
    kt = k.float().transpose(1, 2)  # (H, hd, n)
    vf = v.float()
    chunk = max(1, CHUNK_BYTES // (4 * H * n))
    keys = torch.arange(n, device=q.device)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        scores = soft_cap((q[:, s:e].float() * scale) @ kt, softcap)  # (H, C, n)
        blocked = None if valid is None else ~valid.view(1, n)
        if causal:
            later = keys.view(1, n) > keys[s:e].view(-1, 1)  # (C, n)
            blocked = later if blocked is None else blocked | later
        if blocked is not None:
            scores.masked_fill_(blocked, float("-inf"))
        probs = softmax_with_sink(scores, sinks, head_dim=-3)[0]
        if observer is not None:
            observer(s, e, probs)
        out[:, s:e] = (probs @ vf).to(q.dtype)
    return out
