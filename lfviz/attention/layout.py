"""Attention weights in Longformer's split layout, and conversion to and from dense (n x n) matrices.

The split layout (Hugging Face's, extended with dilation) keeps memory linear in n:
- band        (H, n, W + 1): column c holds key i + (c - W/2) * d_h for query i (its own weight at c = W/2);
                             0 where that key is out of range, padding or global; rows of global tokens are 0.
- to_global   (H, n, G):     weight from token i to the g-th global token (G ascending); global/padding rows 0.
- from_global (H, G, n):     the global tokens' own rows over all keys (0 at padding).
Causal attention (a language model) keeps only the band's past half, the columns c <= W/2 (a causal row has
nothing after itself): `AttentionWeights.stored` is then (H, n, W/2 + 1) and `band` gives the (H, n, W + 1) layout
back on read, so every reader sees one layout while a capture of every layer keeps half the memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AttentionWeights:
    """One layer's attention probabilities in the split layout (see module docstring). Build causal weights with
    `AttentionWeights.causal_band(band, ...)` from a full (H, n, W + 1) band."""

    stored: torch.Tensor  # (H, n, W + 1); causal: (H, n, W/2 + 1), the past half (own weight in the last column)
    to_global: torch.Tensor  # (H, n, G)
    from_global: torch.Tensor  # (H, G, n)
    dilation: tuple[int, ...]  # per head, to map band columns to keys
    global_tokens: tuple[int, ...]
    received: torch.Tensor | None = None  # (H, n) fp32 column sums, when the kernel computed them (derived)
    causal: bool = False  # `stored` holds the band's past half only
    sink: torch.Tensor | None = None  # (H, n) fp32 "sink mass": each query's share taken by a learned sink logit
    # (gpt-oss); its row of weights sums to 1 minus this. None: the model has no learned sinks.

    @classmethod
    def causal_band(cls, band: torch.Tensor, *rest, **kw) -> "AttentionWeights":
        """Causal weights from a full (H, n, W + 1) band whose columns after W/2 are 0: keeps the past half."""
        return cls(band[..., :band.shape[-1] // 2 + 1].contiguous(), *rest, **kw, causal=True)

    @property
    def band(self) -> torch.Tensor:
        """(H, n, W + 1): column c holds key i + (c - W/2) * d_h (a causal capture is padded with zeros on read)."""
        return F.pad(self.stored, (0, self.stored.shape[-1] - 1)) if self.causal else self.stored

    @property
    def window(self) -> int:
        return (self.stored.shape[-1] - 1) * (2 if self.causal else 1)

    def heads(self, index: slice) -> "AttentionWeights":
        """The same layer for a slice of heads."""
        return AttentionWeights(self.stored[index], self.to_global[index], self.from_global[index],
                                tuple(self.dilation[index]), self.global_tokens,
                                None if self.received is None else self.received[index], self.causal,
                                None if self.sink is None else self.sink[index])

    def to(self, device=None, dtype=None) -> "AttentionWeights":
        return AttentionWeights(self.stored.to(device=device, dtype=dtype),
                                self.to_global.to(device=device, dtype=dtype),
                                self.from_global.to(device=device, dtype=dtype),
                                self.dilation, self.global_tokens,
                                None if self.received is None else self.received.to(device=device), self.causal,
                                None if self.sink is None else self.sink.to(device=device))

    def dense(self, rows: slice | None = None, cols: slice | None = None) -> torch.Tensor:
        """(H, r, c) dense weights for a span of queries (rows) and keys (cols); the whole (H, n, n) by default."""
        return weights_to_dense(self, rows, cols)


def band_key_index(n: int, window: int, dilation: tuple[int, ...], device=None, rows: slice | None = None
                   ) -> torch.Tensor:
    """(H, r, W + 1) key position of each band cell of the query rows `rows` (all n by default); positions may
    fall outside 0..n-1."""
    w = window // 2
    r0, r1, _ = (rows or slice(0, n)).indices(n)
    i = torch.arange(r0, r1, device=device).view(1, -1, 1)
    c = torch.arange(window + 1, device=device).view(1, 1, -1)
    d = torch.tensor(dilation, device=device).view(-1, 1, 1)
    return i + (c - w) * d


def weights_from_dense(probs: torch.Tensor, window: int, dilation: tuple[int, ...],
                       global_tokens: tuple[int, ...]) -> AttentionWeights:
    """Split a dense (H, n, n) probability matrix into the band / global layout."""
    H, n, _ = probs.shape
    g = torch.tensor(global_tokens, dtype=torch.long, device=probs.device)
    is_global = torch.zeros(n, dtype=torch.bool, device=probs.device)
    is_global[g] = True
    keys = band_key_index(n, window, dilation, probs.device)  # (H, n, W+1)
    inside = (keys >= 0) & (keys < n)
    safe = keys.clamp(0, n - 1)
    band = torch.gather(probs, 2, safe) * inside
    band = band.masked_fill(is_global[safe] & inside, 0.0)  # global keys live in to_global
    band[:, is_global] = 0.0
    to_global = probs[:, :, g].clone()
    to_global[:, is_global] = 0.0
    from_global = probs[:, g, :].clone()
    return AttentionWeights(band, to_global, from_global, tuple(dilation), tuple(global_tokens))


def weights_to_dense(weights: AttentionWeights, rows: slice | None = None, cols: slice | None = None) -> torch.Tensor:
    """Rebuild dense (H, r, c) probabilities for a span; exact inverse of `weights_from_dense`."""
    band = weights.band
    H, n, width = band.shape
    rows = rows or slice(0, n)
    cols = cols or slice(0, n)
    r0, r1, _ = rows.indices(n)
    c0, c1, _ = cols.indices(n)
    out = band.new_zeros(H, r1 - r0, c1 - c0)
    keys = band_key_index(n, width - 1, weights.dilation, band.device, slice(r0, r1))  # (H, r, W+1)
    inside = (keys >= c0) & (keys < c1)
    h_idx, r_idx, c_idx = inside.nonzero(as_tuple=True)
    out[h_idx, r_idx, keys[h_idx, r_idx, c_idx] - c0] = band[:, r0:r1][h_idx, r_idx, c_idx]
    for j, g in enumerate(weights.global_tokens):
        if c0 <= g < c1:
            out[:, :, g - c0] += weights.to_global[:, r0:r1, j]
        if r0 <= g < r1:
            out[:, g - r0, :] = weights.from_global[:, j, c0:c1]
    return out
