"""Longformer attention semantics, written once as a mask predicate.

Everything else (the dense reference, the fast banded kernel, the pattern figure, the tests) is derived from
`attends` or checked against it.

For one layer with one-sided window `w` (= two-sided window // 2), dilation `d` (per head), global set G and
padding:
- a non-global query i attends key j = i + k*d for |k| <= w, if j is neither padding nor global;
  plus every global key exactly once (through the local projections);
- a global query attends every non-padding key (through the global projections);
- a padding query attends nothing (its row is all zero).
Causal (autoregressive, for language models; allenai's `autoregressive` mode): the same pairs intersected with
kv <= q. A non-global query then sees itself and its w previous band keys i - k*d (0 <= k <= w: "sees w previous
tokens"), plus every global key at or before it (a "sink"); a global query sees every token at or before it.
"""
from __future__ import annotations

import torch

from ..config import LayerSpec


def attends(q_idx: torch.Tensor, kv_idx: torch.Tensor, *, one_sided: int, dilation: torch.Tensor | int,
            is_global: torch.Tensor, is_valid: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """True where query `q_idx` attends key `kv_idx` (all arguments broadcast together); causal: only kv <= q.

    is_global, is_valid: (n,) bool, indexed by position; dilation: int or a tensor broadcastable against the
    index tensors (e.g. (H, 1, 1) for one dilation per head).
    """
    offset = kv_idx - q_idx
    in_band = (offset.abs() <= one_sided * dilation) & (offset % dilation == 0)
    q_global, k_global = is_global[q_idx], is_global[kv_idx]
    q_valid, k_valid = is_valid[q_idx], is_valid[kv_idx]
    local_row = ~q_global & ((in_band & ~k_global) | k_global)
    pairs = q_valid & k_valid & (local_row | q_global)
    return pairs & (offset <= 0) if causal else pairs


def dense_mask(spec: LayerSpec, n: int, global_tokens=(), valid: torch.Tensor | None = None,
               causal: bool = False) -> torch.Tensor:
    """(H, n, n) bool: which (query, key) pairs a layer attends, per head."""
    is_global = torch.zeros(n, dtype=torch.bool)
    is_global[list(global_tokens)] = True
    is_valid = torch.ones(n, dtype=torch.bool) if valid is None else valid.bool().cpu()
    idx = torch.arange(n)
    dil = torch.tensor(spec.dilation).view(-1, 1, 1)  # (H, 1, 1)
    return attends(idx.view(1, -1, 1), idx.view(1, 1, -1), one_sided=spec.one_sided, dilation=dil,
                   is_global=is_global, is_valid=is_valid, causal=causal)
