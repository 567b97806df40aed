"""Reformer's LSH attention pattern (Kitaev et al. 2020; Hugging Face's `LSHSelfAttention`), for one document:
which keys each query attends is decided by hashing the shared query/key vectors, not by position.

- Hashing: per head and round, rotate the vector by a random (d, B/2) matrix and take the bucket
  argmax([xR, -xR]) (angular LSH, B buckets). `rotations` are data: Hugging Face's own for a check, or
  `random_rotations` (seeded).
- Sorting: the R rounds are laid end to end, each sorted by (bucket, position): one sequence of R * n slots.
- Chunks: the sequence is cut into chunks of c slots; each query slot attends the key slots of its own chunk and
  the `before` chunks ahead of it (and `after` behind), cyclically over the whole sequence (so the first chunk of
  a round also sees the last chunk of the round before, as Hugging Face does). No mask between buckets: a chunk
  that holds two buckets attends across them.
- Self: a query never attends its own position (its own q.k would dominate with shared QK), unless nothing else
  is there to attend.

A model not trained with shared QK can still be run this way, honestly labelled as an emulation: hash its keys,
attend with its own q and k (`EMULATION_NOTE`).
"""
from __future__ import annotations

import torch

EMULATION_NOTE = ("This model was not trained with Reformer's shared query/key projection: lfviz hashes its keys "
                  "to form the buckets and then attends with the model's own queries and keys. It shows what LSH "
                  "bucketing would keep, not how a Reformer behaves.")


def random_rotations(heads: int, dim: int, num_hashes: int, num_buckets: int, seed: int = 0) -> torch.Tensor:
    """(H, d, R, B/2) standard normal rotations from a private generator (seeded)."""
    if num_buckets < 2 or num_buckets % 2:
        raise ValueError(f"the number of buckets must be even and at least 2, got {num_buckets}")
    g = torch.Generator().manual_seed(seed)
    return torch.randn(heads, dim, num_hashes, num_buckets // 2, generator=g)


def hash_buckets(vectors: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """vectors (H, n, d), rotations (H, d, R, B/2) -> (H, R, n) long buckets in 0..B-1."""
    rotated = torch.einsum("htd,hdrb->hrtb", vectors.float(), rotations.float())  # (H, R, n, B/2)
    return torch.cat([rotated, -rotated], dim=-1).argmax(-1)


def sorted_slots(buckets: torch.Tensor) -> torch.Tensor:
    """(H, R, n) buckets -> (H, R * n) positions: round after round, each sorted by (bucket, position)."""
    H, R, n = buckets.shape
    keys = buckets * n + torch.arange(n).view(1, 1, n)  # unique within a round: bucket, then position
    order = keys.argsort(dim=-1)  # (H, R, n)
    return order.reshape(H, R * n)


def chunk_keys(slots: torch.Tensor, chunk: int, before: int = 1, after: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunked layout: (queries (H, C, c), keys (H, C, (before + 1 + after) * c)) positions, C = R * n / c
    chunks; keys of chunk i are chunks i - before .. i + after (cyclic), in that order."""
    H, S = slots.shape
    if S % chunk:
        raise ValueError(f"LSH attention needs a length that is a multiple of its chunk length ({chunk}); "
                         f"pad the text or pick another chunk length")
    q = slots.view(H, S // chunk, chunk)
    k = torch.cat([q.roll(-shift, dims=1) for shift in range(-before, after + 1)], dim=-1)
    return q, k


def attended(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(H, C, c, K) bool in the chunked layout: every key slot except the query's own position, which is kept
    only for a query with no other key."""
    self_ = queries.unsqueeze(-1) == keys.unsqueeze(-2)  # (H, C, c, K)
    alone = self_.all(-1, keepdim=True)
    return ~self_ | alone


def token_mask(buckets: torch.Tensor, chunk: int, before: int = 1, after: int = 0) -> torch.Tensor:
    """(H, R, n, n) bool: per round, which key positions each query position attends (the union over rounds is
    `.any(1)`). For small texts and tests; long texts stay in the chunked layout."""
    H, R, n = buckets.shape
    q, k = chunk_keys(sorted_slots(buckets), chunk, before, after)
    ok = attended(q, k)  # (H, C, c, K)
    rounds = (torch.arange(q.shape[1]) * chunk // n).view(1, -1, 1, 1).expand_as(ok)  # the query's round
    out = torch.zeros(H, R, n, n, dtype=torch.bool)
    h = torch.arange(H).view(H, 1, 1, 1).expand_as(ok)
    qq = q.unsqueeze(-1).expand_as(ok)
    kk = k.unsqueeze(-2).expand_as(ok)
    out[h[ok], rounds[ok], qq[ok], kk[ok]] = True
    return out
