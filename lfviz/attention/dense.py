"""Full attention without n x n storage: the path `banded.banded_attention` takes when the window covers the text
(no dilation) and no weights are wanted, e.g. the full-attention reference that fidelity compares against.

Fast path: PyTorch's fused scaled-dot-product attention (on the CPU its flash kernel, in fp32: on 2 cores, 12
heads of 32 over 3,921 tokens, 0.17 s against 0.88 s for query chunks of a plain softmax(q k^T) v; bf16 inputs
are slower there, so they are upcast as the plain path does). It has neither softcaps nor sinks, and gives no
probabilities: those cases, and a run inside `observe` that wants the probabilities, take query chunks of a plain
softmax(q k^T) v (memory: one chunk's (H, C, n) scores). Padding keys are left out (or masked where the causal
mask would shift).
`observe(observer, rows=)`: what an analysis of the probabilities needs, handed over while the run computes them
(fidelity's attention from beyond the window, inside the full-attention reference run instead of a second pass):
each chunk's probabilities on the plain path, or, where the flash kernel applies, the queries, keys and each
query's log-sum-exp (from which any probability is one dot product: exp(scale q_i . k_j - lse_i)).
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
# the CPU flash kernel with each row's log-sum-exp (PyTorch >= 2.2; without it `observe` takes the plain path)
_flash_cpu = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)

Observer = Callable[[int, int, torch.Tensor], None]  # (s, e, probs (H, e - s, n))
RowsObserver = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, bool], None]  # (q, k, lse, scale, causal)


@contextmanager
def observe(observer: Observer, rows: RowsObserver | None = None) -> Iterator[None]:
    """Until the block ends, every `dense_attention` call of this thread hands what it computes to an analysis:

    - `rows(q, k, lse, scale, causal)` once per call where the CPU flash kernel applies (no softcap, no sinks, no
      padding) and `rows` is given: q, k (H, n, hd) as passed in, lse (H, n) fp32 each query's log-sum-exp of
      scale * q . k over its keys (those at or before it when causal). The probability of key j for query i is
      exp(scale * q_i . k_j - lse_i). The run stays on the flash kernel.
    - else `observer(s, e, probs)` for each query chunk, before multiplying it by the values: probs (H, e - s, n)
      fp32, queries s..e-1 over every key (0 where masked; with sinks, a row sums to 1 minus its sink share).
      Then the chunked softmax runs (on a GPU too: SDPA does not give its probabilities).
    Observers must not change what they are given. Only the calling thread's runs reach them: the app's other
    sessions share the model."""
    previous = getattr(_local, "observer", None), getattr(_local, "rows", None)
    _local.observer, _local.rows = observer, rows
    try:
        yield
    finally:
        _local.observer, _local.rows = previous


def is_full(one_sided: int, dilation, n: int) -> bool:
    """Whether a band of `one_sided` keys per side with this dilation is full attention on n tokens."""
    return max(dilation) == 1 and one_sided >= n - 1


def dense_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None = None,
                    causal: bool = False, scale: float = 1.0, softcap: float | None = None,
                    sinks: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(scale * q k^T) v over every key (every key at or before the query when causal; only `valid` keys).

    q, k, v: (H, n, hd); valid: (n,) bool or None. Returns (H, n, hd) in q's dtype. Rows of padding queries are
    whatever the softmax gives: the caller zeroes them (as `banded_attention` does).
    softcap, sinks (H,): see `logits.py` (then the chunked softmax runs: SDPA has neither).
    Inside `observe(observer, rows)`: see there."""
    observer, rows = getattr(_local, "observer", None), getattr(_local, "rows", None)
    if softcap is None and sinks is None:
        if rows is not None and valid is None and q.device.type == "cpu" and _flash_cpu is not None:
            out, lse = _flash_cpu(q[None].float(), k[None].float(), v[None].float(), is_causal=causal, scale=scale)
            rows(q, k, lse[0], scale, causal)
            return out[0].to(q.dtype)
        if observer is None:
            return _fused(q, k, v, valid, causal, scale)
    return _chunked(q, k, v, valid, causal, scale, softcap, sinks, observer)


def _fused(q, k, v, valid, causal: bool, scale: float) -> torch.Tensor:
    """`dense_attention` by `F.scaled_dot_product_attention` (no softcap, no sinks). Padding keys are dropped
    (non-causal, or a causal run padded at the end: the top-left causal mask of the kept keys is then the same);
    a causal run padded elsewhere passes the mask (slower, same result)."""
    H, n, hd = q.shape
    dtype = q.dtype
    if q.device.type == "cpu":  # the CPU kernel is fastest in fp32; the plain path computes in fp32 too
        q, k, v = q.float(), k.float(), v.float()
    mask = None
    if valid is not None:
        kept = int(valid.sum())
        if kept == 0:  # every query is padding (the caller zeroes them)
            return torch.zeros_like(q, dtype=dtype)
        if causal and bool(valid[:kept].all()):  # padded at the end: keep the prefix
            k, v = k[:, :kept], v[:, :kept]
        elif not causal:
            index = valid.nonzero()[:, 0]
            k, v = k.index_select(1, index), v.index_select(1, index)
        else:
            mask = valid.view(1, n) & torch.ones(n, n, dtype=torch.bool, device=q.device).tril()  # (n, n)
    mask = None if mask is None else mask[None, None]
    out = F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=mask, is_causal=causal and mask is None,
                                         scale=scale)[0]
    return out.to(dtype)


def _chunked(q, k, v, valid, causal: bool, scale: float, softcap, sinks, observer) -> torch.Tensor:
    """`dense_attention` in query chunks of a plain softmax, each chunk's probabilities to `observer` if any."""
    H, n, hd = q.shape
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
