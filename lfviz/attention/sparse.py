"""Attention under another sparse pattern than Longformer's, run on the same model: BigBird's blocks
(`bigbird.py`) or Reformer's LSH buckets (`lsh.py`), each given as a multiplicity per (query, key).

A pattern gives, per layer, `rows(s, e) -> (H, e - s, n)` int counts: how many times key j enters query i's
softmax, 0 = not attended. Counting matters: Reformer's R hashing rounds are combined as one softmax over the keys
of every round, a key found in two rounds twice (Hugging Face weights each round's output by its log-sum-exp,
which is the same thing), so weight_ij is proportional to count_ij * exp(q_i . k_j). `pattern_attention` computes
that in query chunks on the CPU (one chunk's (H, C, n) scores at a time, never n x n).

`attention_pattern(pattern)` makes every lfviz attention call in this thread (encoders' `BandedSelfAttention`
and causal LMs' `longformer_attention`) use `pattern` instead of the Longformer band: the same weights under
another pattern. A causal LM keeps only keys at or before each query; a row left with nothing attends itself.

BigBird (counts 0 or 1) runs on its block-sparse kernel (`block_sparse.py`: each query block's key blocks
gathered, scored and softmaxed as one dense window), the pictured layer included; on a GPU, the other layers go
through FlexAttention with a block mask read from its block table (`bigbird_flex`: the fused kernel skips the key
tiles a query tile never attends). `BigBirdPattern(kernel="generic")` runs it on the chunked path instead, the
reference both are tested against. LSH, whose counts can exceed 1, stays on the chunked path.
"""
from __future__ import annotations

import math
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch._dynamo.exc import TorchDynamoException

from . import bigbird, flex, lsh
from .block_sparse import block_sparse_attention, keys_per_query

CHUNK_BYTES = 32 * 2**20
Rows = Callable[[int, int], torch.Tensor]  # (s, e) -> (H, e - s, n) int counts
_local = threading.local()


def pattern_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rows: Rows, scale: float,
                      causal: bool = False, pool: torch.Tensor | None = None) -> torch.Tensor:
    """q, k, v: (H, n, hd). Returns (H, n, hd): softmax over the attended keys, each weighted by its count.
    pool: an (H, m, m) float32 zeros tensor to receive the probabilities summed over an m x m grid of cells (query
    cell, key cell), a picture of the attention without storing it."""
    H, n, hd = q.shape
    m = 0 if pool is None else pool.shape[-1]
    cell = torch.arange(n, device=q.device) * m // n if m else None  # each position's cell
    out = torch.empty_like(q)
    kt, vf = k.float().transpose(1, 2), v.float()
    chunk = max(1, CHUNK_BYTES // (4 * H * n))
    keys = torch.arange(n, device=q.device)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        counts = rows(s, e).to(q.device)  # (H, C, n)
        if causal:
            counts = counts * (keys.view(1, 1, n) <= keys[s:e].view(1, -1, 1))
        alone = counts.sum(-1) == 0  # (H, C): nothing left to attend: the query attends itself
        if alone.any():
            counts = counts.clone()
            h, c = alone.nonzero(as_tuple=True)
            counts[h, c, s + c] = 1
        scores = (q[:, s:e].float() * scale) @ kt + counts.float().log()  # log 0 = -inf: not attended
        probs = torch.softmax(scores, dim=-1)  # (H, C, n)
        out[:, s:e] = (probs @ vf).to(q.dtype)
        if m:
            add_to_picture(pool, probs, s, cell)
    return out


def add_to_picture(pool: torch.Tensor, probs: torch.Tensor, s: int, cell: torch.Tensor) -> None:
    """Add the probabilities of query rows s.. ((H, C, n)) to the (H, m, m) cell sums `pool`; cell: (n,) each
    position's cell."""
    by_key = torch.zeros(probs.shape[0], probs.shape[1], pool.shape[-1], device=pool.device)
    pool.index_add_(1, cell[s:s + probs.shape[1]], by_key.index_add_(2, cell, probs.to(pool.device)))


def picture_mean(pool: torch.Tensor, n: int) -> torch.Tensor:
    """Cell sums (H, m, m) of n query rows -> the mean over each query cell's rows."""
    m = pool.shape[-1]
    per_cell = torch.bincount(torch.arange(n) * m // n, minlength=m).clamp(min=1).to(pool.device)
    return pool / per_cell.view(1, m, 1)


def bigbird_flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocks: torch.Tensor, block: int, scale: float,
                 causal: bool = False, compiled: bool | None = None) -> torch.Tensor:
    """BigBird through FlexAttention: q, k, v (H, n, hd); blocks (H, nb, nb) bool (`bigbird.block_mask`); query
    i attends key j where blocks[h, i // block, j // block] (and j <= i when causal; the diagonal block always
    holds the query itself, so no row is empty). compiled: the fused kernel (default: on CUDA); uncompiled,
    FlexAttention evaluates the mask on every pair (tests on the CPU). Compiled for the CPU, torch 2.13's C++
    template fails on this mask (an undeclared `cur_qSplitSize`), so the compiled path is checked on a GPU only
    (tests/gpu); where compiling fails, `run_active` falls back to the chunked path with a warning."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    H, n, hd = q.shape
    table = blocks.to(q.device)

    def mask_mod(b, h, qi, kv):
        keep = table[h, qi // block, kv // block]
        return keep & (kv <= qi) if causal else keep

    compiled = q.is_cuda if compiled is None else compiled
    mask = create_block_mask(mask_mod, 1, H, n, n, device=q.device, BLOCK_SIZE=flex.BLOCK)
    attend = flex._compiled() if compiled else flex_attention
    with flex._LOCK:
        out = attend(q[None], k[None], v[None], block_mask=mask, scale=scale)
    return out[0]


KERNELS = ("block-sparse", "generic")


@dataclass(frozen=True)
class BigBirdPattern:
    """BigBird ITC: blocks of `block` tokens, a window of 3 blocks, the first and last block global, `num_random`
    random blocks per query block from a seeded plan (each layer and head its own draw). kernel: "block-sparse"
    (`block_sparse.py`; FlexAttention on a GPU) or "generic" (the chunked path, the reference)."""

    block: int = 64
    num_random: int = 3
    seed: int = 0
    name: str = "BigBird"
    kernel: str = "block-sparse"

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise ValueError(f"BigBird's kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")

    def plan(self, layer: int, heads: int, nb: int) -> np.ndarray:
        """(H, nb - 2, r) the layer's random key blocks (each layer and head its own draw)."""
        return bigbird.random_plan(nb, self.num_random, heads, self.seed + 1009 * layer)

    def blocks(self, layer: int, heads: int, nb: int) -> torch.Tensor:
        """(H, nb, nb) bool: the layer's block table (`plan` as a predicate)."""
        return bigbird.block_mask(nb, self.plan(layer, heads, nb))

    def num_blocks(self, n: int) -> int:
        """Blocks of an n-token text; ValueError saying what to change when the text is too short for them."""
        nb = -(-n // self.block)
        if nb < 5 + 2 * self.num_random:
            need = bigbird.min_length(self.block, self.num_random)
            raise ValueError(f"BigBird's block-sparse pattern needs at least {need:,} tokens with blocks of "
                             f"{self.block} and {self.num_random} random blocks (this text has {n:,}): pick a smaller "
                             f"block or fewer random blocks")
        return nb

    def rows(self, layer: int, k: torch.Tensor) -> Rows:
        H, n, _ = k.shape
        blocks = self.blocks(layer, H, self.num_blocks(n))
        of = torch.arange(n) // self.block  # each position's block

        def rows(s: int, e: int) -> torch.Tensor:
            return blocks[:, of[s:e]][:, :, of].to(torch.int32)  # (H, C, n)

        return rows


@dataclass(frozen=True)
class LSHPattern:
    """Reformer LSH: `num_hashes` rounds of angular hashing into `num_buckets` buckets (seeded rotations, each layer
    its own), sorted, chunks of `chunk` slots with the chunk before. Hashes the layer's keys (an emulation on
    models without shared QK: `lsh.EMULATION_NOTE`)."""

    num_buckets: int = 8
    num_hashes: int = 2
    chunk: int = 64
    seed: int = 0
    name: str = "Reformer LSH"

    def buckets(self, layer: int, k: torch.Tensor) -> torch.Tensor:
        """(H, R, n) buckets of the layer's keys."""
        H, n, hd = k.shape
        rot = lsh.random_rotations(H, hd, self.num_hashes, self.num_buckets, self.seed + 1009 * layer)
        return lsh.hash_buckets(k.detach().float().cpu(), rot)

    def rows(self, layer: int, k: torch.Tensor) -> Rows:
        return lsh_rows(self.buckets(layer, k), self.chunk)


def lsh_rows(buckets: torch.Tensor, chunk: int) -> Rows:
    """Counts of the LSH pattern of (H, R, n) buckets (`lsh.py`: sorted rounds, chunks with the chunk before;
    a length that is not a multiple of `chunk` gets a last, partial chunk)."""
    H, _, n = buckets.shape
    slots = lsh.sorted_slots(buckets)  # (H, R * n)
    slots = torch.cat([slots, slots.new_full((H, -slots.shape[1] % chunk), -1)], dim=1)  # -1: an empty slot
    q, kk = lsh.chunk_keys(slots, chunk)
    ok = lsh.attended(q, kk) & (q >= 0).unsqueeze(-1) & (kk >= 0).unsqueeze(-2)  # (H, C, c, K)
    h = torch.arange(H).view(H, 1, 1, 1).expand_as(ok)[ok]
    qq, key = q.unsqueeze(-1).expand_as(ok)[ok], kk.unsqueeze(-2).expand_as(ok)[ok]
    order = torch.argsort(qq, stable=True)  # entries by query position: a chunk of rows is one slice
    h, qq, key = h[order], qq[order], key[order]
    starts = torch.searchsorted(qq, torch.arange(n + 1))

    def rows(s: int, e: int) -> torch.Tensor:
        a, b = int(starts[s]), int(starts[e])
        counts = torch.zeros(H, e - s, n, dtype=torch.int32)
        counts.index_put_((h[a:b], qq[a:b] - s, key[a:b]), torch.ones(b - a, dtype=torch.int32), accumulate=True)
        return counts

    return rows


@contextmanager
def attention_pattern(pattern, picture_layer: int | None = None, cells: int = 128) -> Iterator[dict]:
    """Inside the block, this thread's lfviz attention runs under `pattern` (BigBirdPattern, LSHPattern). With
    `picture_layer`, the yielded dict gets "picture": that layer's (H, m, m) mean attention per cell (rows: query
    cells, m = min(n, cells)), "keys_per_query": its mean attended keys per query (distinct, before causality)
    and, for LSH, "buckets": its (H, R, n) buckets."""
    previous = getattr(_local, "pattern", None), getattr(_local, "picture", None)
    found: dict = {}
    _local.pattern, _local.picture = pattern, (picture_layer, cells, found)
    try:
        yield found
    finally:
        _local.pattern, _local.picture = previous


def active():
    """The pattern this thread runs under, or None (Longformer's band)."""
    return getattr(_local, "pattern", None)


def run_active(layer: int, q, k, v, scale: float | None = None, causal: bool = False) -> torch.Tensor:
    """The active pattern's attention for one layer (q, k, v: (H, n, hd))."""
    pattern = active()
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    want, cells, found = getattr(_local, "picture", None) or (None, 0, {})
    if isinstance(pattern, BigBirdPattern) and pattern.kernel == "block-sparse":
        return _bigbird(pattern, layer, q, k, v, scale, causal, cells if want == layer else 0, found)
    if want != layer:
        return pattern_attention(q, k, v, pattern.rows(layer, k), scale, causal)
    H, n, _ = q.shape
    m = min(n, cells)
    pool = torch.zeros(H, m, m, device=q.device)
    if isinstance(pattern, LSHPattern):  # hashed once: the rows and the buckets shown come from the same hashing
        found["buckets"] = pattern.buckets(layer, k)
        rows = lsh_rows(found["buckets"], pattern.chunk)
    else:
        rows = pattern.rows(layer, k)
    out = pattern_attention(q, k, v, rows, scale, causal, pool)
    step = max(1, 2**22 // max(1, H * n))
    found["keys_per_query"] = sum(int((rows(s, min(n, s + step)) > 0).sum()) for s in range(0, n, step)) / (H * n)
    found["picture"] = picture_mean(pool, n).cpu()
    return out


def _bigbird(pattern: BigBirdPattern, layer: int, q, k, v, scale: float, causal: bool, cells: int, found: dict):
    """BigBird's fast paths: FlexAttention where it runs (not for the pictured layer, cells > 0), else the
    block-sparse kernel, which also fills `found` with the picture and keys per query."""
    H, n, _ = q.shape
    nb = pattern.num_blocks(n)
    plan = pattern.plan(layer, H, nb)
    if not cells and flex.available(q.device, q.shape[-1]):
        try:
            return bigbird_flex(q, k, v, bigbird.block_mask(nb, plan), pattern.block, scale, causal)
        except TorchDynamoException as e:
            warnings.warn(f"FlexAttention could not compile BigBird's mask ({str(e)[:200]}); using the block-sparse "
                          "kernel", stacklevel=3)
    m = min(n, cells)
    pool = torch.zeros(H, m, m, device=q.device) if cells else None
    out = block_sparse_attention(q, k, v, plan, pattern.block, scale, causal, pool=pool)
    if cells:
        found["keys_per_query"] = keys_per_query(bigbird.block_mask(nb, plan), n, pattern.block)
        found["picture"] = picture_mean(pool, n).cpu()
    return out
