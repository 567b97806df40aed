"""Attention patterns as numbers: Longformer (from the mask predicate), full, and BigBird block-sparse;
attended-pair counts and attention memory per layer (as tables), and how far information travels layer by layer.

Everything here works without a model and without an n x n matrix, so 16k-token documents stay cheap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..attention import bigbird
from ..attention.layout import band_key_index
from ..config import LayerSpec


def longformer_pairs(spec: LayerSpec, n: int, global_tokens=(), head: int = 0, causal: bool = False):
    """(rows, cols) int arrays of every attended (query, key) pair of one head, built from the band layout.

    Band cells are exactly the predicate's local pairs; global rows/columns are added once; causal keeps the
    pairs with key <= query (a language model's pattern).
    """
    spec = spec.for_length(n)  # a window wider than the text lists no more pairs, and must not cost more
    keys = band_key_index(n, spec.window, spec.dilation[head : head + 1])[0]  # (n, W+1)
    is_global = torch.zeros(n, dtype=torch.bool)
    is_global[list(global_tokens)] = True
    rows = torch.arange(n).view(n, 1).expand_as(keys)
    inside = (keys >= 0) & (keys < n)
    local = inside & ~is_global[keys.clamp(0, n - 1)] & ~is_global.view(n, 1)
    r, c = [rows[local]], [keys[local]]
    g = torch.tensor(sorted(global_tokens), dtype=torch.long)
    if len(g):
        ng = (~is_global).nonzero().flatten()
        r += [ng.repeat_interleave(len(g)), g.repeat_interleave(n)]  # non-global rows -> global columns,
        c += [g.repeat(len(ng)), torch.arange(n).repeat(len(g))]     # global rows -> every column
    rows_, cols_ = torch.cat(r), torch.cat(c)
    if causal:
        keep = cols_ <= rows_
        rows_, cols_ = rows_[keep], cols_[keep]
    return rows_.numpy(), cols_.numpy()


def density(rows: np.ndarray, cols: np.ndarray, n: int, cells: int = 256) -> np.ndarray:
    """(k, k) share of attended pairs in each cell of an n x n picture downsampled to k = min(n, cells)."""
    k = min(n, cells)
    edges = np.linspace(0, n, k + 1)
    ri = np.searchsorted(edges, rows, side="right") - 1
    ci = np.searchsorted(edges, cols, side="right") - 1
    counts = np.bincount(ri * k + ci, minlength=k * k).reshape(k, k).astype(np.float64)
    sizes = np.diff(np.ceil(edges).astype(np.int64))  # whole tokens per cell: t lands in i if e[i] <= t < e[i+1]
    area = np.outer(sizes, sizes).astype(np.float64)
    return np.divide(counts, area, out=np.zeros_like(counts), where=area > 0)


def full_pairs(n: int):
    idx = np.arange(n)
    return np.repeat(idx, n), np.tile(idx, n)


def bigbird_min_length(block: int = 64, num_random: int = 3) -> int:
    return bigbird.min_length(block, num_random)


def bigbird_blocks(n: int, block: int = 64, num_random: int = 3, seed: int = 0) -> list[list[int]]:
    """Key blocks of each query block in BigBird's ITC pattern (`attention.bigbird`: window 3 blocks, first/last
    block global, `num_random` random blocks from a seeded plan), one head. Raises ValueError below
    `bigbird_min_length` tokens, where Hugging Face's BigBird falls back to full attention."""
    if n < bigbird_min_length(block, num_random):
        raise ValueError(f"BigBird's block-sparse pattern needs at least {bigbird_min_length(block, num_random)} "
                         f"tokens with block size {block} and {num_random} random blocks (this text has {n}); "
                         f"BigBird uses full attention below that")
    nb = -(-n // block)
    mask = bigbird.block_mask(nb, bigbird.random_plan(nb, num_random, 1, seed))[0]  # (nb, nb)
    return [row.nonzero().flatten().tolist() for row in mask]


def bigbird_pairs(n: int, block: int = 64, num_random: int = 3, seed: int = 0):
    rows, cols = [], []
    for qb, kbs in enumerate(bigbird_blocks(n, block, num_random, seed)):
        q = np.arange(qb * block, min(n, (qb + 1) * block))
        k = np.concatenate([np.arange(b * block, min(n, (b + 1) * block)) for b in kbs])
        rows.append(np.repeat(q, len(k)))
        cols.append(np.tile(k, len(q)))
    return np.concatenate(rows), np.concatenate(cols)


@dataclass
class PatternCost:
    name: str
    pairs: int  # attended (query, key) pairs per head
    share: float  # pairs / n^2
    score_bytes: int  # fp32 attention scores for all heads of one layer, as each method stores them


def layer_costs(spec: LayerSpec, n: int, num_heads: int, global_tokens=(), block: int = 64,
                num_random: int = 3, causal: bool = False) -> list[PatternCost]:
    """Longformer vs full vs BigBird for one layer (pairs of head 0; memory for all heads, fp32). causal: the
    Longformer and full patterns keep keys at or before the query (BigBird stays bidirectional, as HF has it)."""
    G = len(global_tokens)
    spec = spec.for_length(n)  # what lfviz stores: the band is never wider than the text
    lf = len(longformer_pairs(spec, n, global_tokens, causal=causal)[0])
    full = n * (n + 1) // 2 if causal else n * n
    costs = [PatternCost("Longformer", lf, lf / n**2, num_heads * 4 * (n * (spec.window + 1 + G) + G * n)),
             PatternCost("full", full, full / n**2, num_heads * 4 * n * n)]
    try:
        blocks = bigbird_blocks(n, block, num_random)
        size = [min(n, (b + 1) * block) - b * block for b in range(len(blocks))]  # the last block may be short
        bb = sum(size[q] * sum(size[k] for k in kbs) for q, kbs in enumerate(blocks))  # pairs, without listing them
        stored = sum(len(kbs) for kbs in blocks) * block * block
        costs.append(PatternCost("BigBird", bb, bb / n**2, num_heads * 4 * stored))
    except ValueError:
        pass  # too short for BigBird's pattern
    return costs


def _band_spread(reached: np.ndarray, w: int, d: int, causal: bool = False, backward: bool = False) -> np.ndarray:
    """(n,) bool: positions i with some reached j = i + k*d, |k| <= w (the band of dilation d), exactly: a sliding
    window over each residue class i mod d, by prefix sums (O(n), whatever the window). Causal: k <= 0 (i reads
    from j at or before it), or k >= 0 when `backward` (i is read by a reached j at or after it)."""
    n = len(reached)
    m = -(-n // d)
    cls = np.zeros(m * d, dtype=np.int64)
    cls[:n] = reached
    cls = cls.reshape(m, d)  # column r: class r's slots in order
    csum = np.vstack([np.zeros((1, d), np.int64), np.cumsum(cls, axis=0)])  # (m + 1, d)
    t = np.arange(m)
    before, after = (0 if causal and backward else w), (0 if causal and not backward else w)
    hits = csum[np.minimum(t + after + 1, m)] - csum[np.maximum(t - before, 0)]  # (m, d): reached in the window
    return (hits > 0).reshape(-1)[:n]


def reach_sets(specs: tuple[LayerSpec, ...], n: int, global_tokens=(), source: int | None = None,
               causal: bool = False, backward: bool = False) -> list[np.ndarray]:
    """Which tokens have received token `source`'s information: one (n,) bool array for the input (the source
    alone) and one after each layer. Token i receives from j at a layer if i attends j there in some head
    (`mask.attends`): non-global i from its band keys (every head's dilation) and from every global token; a
    global token from everything (causal: from keys at or before it only, so information flows forward).
    backward: the other way, which tokens' information `source` has received by each layer (its receptive
    field); the same sets unless causal, as attending is symmetric without causality. Exact, and O(n) per layer
    and dilation."""
    source = n // 2 if source is None else source
    if not 0 <= source < n:
        raise ValueError(f"source token {source} is out of range (0..{n - 1})")
    backward = backward and causal
    reached = np.zeros(n, dtype=bool)
    reached[source] = True
    glob = np.array(sorted(global_tokens), dtype=np.int64)
    out = [reached]
    for spec in specs:
        spec = spec.for_length(n)
        new = reached.copy()
        for d in set(spec.dilation):
            new |= _band_spread(reached, min(spec.one_sided, (n - 1) // d), d, causal, backward)
        if len(glob):
            idx = np.flatnonzero(reached)
            if backward:  # reached i reads every global key at or before it; a reached global reads all before it
                new[glob[glob <= idx[-1]]] = True
                hit = glob[reached[glob]]
                if len(hit):
                    new[:hit.max() + 1] = True
            elif causal:
                hit = glob[reached[glob]]
                if len(hit):
                    new[hit.min():] = True  # every later token attends a reached global token
                new[glob[glob >= idx[0]]] = True  # a global token attends everything at or before it
            else:
                if reached[glob].any():
                    new[:] = True  # every token attends the global tokens
                new[glob] = True  # global tokens attend everything (something is always reached)
        reached = new
        out.append(reached)
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(first, last)] of each run of consecutive True positions in a (n,) bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def reach(specs: tuple[LayerSpec, ...], n: int, global_tokens=(), source: int | None = None) -> list[tuple[int, int]]:
    """How far token `source`'s information has travelled after each layer: [(lowest, highest) position reached],
    one entry per layer (the reached set between them may have gaps: see `reach_sets`)."""
    out = []
    for reached in reach_sets(specs, n, global_tokens, source)[1:]:
        idx = np.flatnonzero(reached)
        out.append((int(idx[0]), int(idx[-1])))
    return out


def _dilation_text(spec: LayerSpec) -> str:
    return str(spec.dilation[0]) if len(set(spec.dilation)) == 1 else ",".join(map(str, spec.dilation))


def costs_frame(specs: tuple[LayerSpec, ...], n: int, num_heads: int, global_tokens=(), block: int = 64,
                num_random: int = 3, causal: bool = False) -> pd.DataFrame:
    """One row per (layer, pattern): attended pairs per head, their share of n^2, and the fp32 attention scores
    all heads of the layer store (MiB). BigBird rows are missing when n is below its minimum length."""
    rows = []
    for layer, spec in enumerate(specs):
        for c in layer_costs(spec, n, num_heads, global_tokens, block, num_random, causal):
            rows.append({"layer": layer, "window": spec.window, "dilation": _dilation_text(spec), "pattern": c.name,
                         "pairs per head": c.pairs, "share of n²": round(c.share, 5),
                         "score memory (MiB)": round(c.score_bytes / 2**20, 3)})
    return pd.DataFrame(rows)


def reach_curves(specs: tuple[LayerSpec, ...], n: int, global_tokens=(), source: int | None = None,
                 causal: bool = False, backward: bool = False) -> dict[str, list[list[tuple[int, int]]]]:
    """The runs of positions reached (`runs` of `reach_sets`) after 0, 1, ..., L layers, for the current
    configuration, the same without global tokens (only when it has some), and full attention. Entry 0 is the
    source alone. backward: the tokens whose information has reached `source` instead (see `reach_sets`)."""
    source = n // 2 if source is None else source
    full = tuple(LayerSpec(window=2 * n, dilation=(1,)) for _ in specs)  # a window covering every key
    configs = {"current configuration": (specs, tuple(global_tokens))}
    if global_tokens:
        configs["without global tokens"] = (specs, ())
    configs["full attention"] = (full, ())
    return {name: [runs(r) for r in reach_sets(s, n, g, source, causal, backward)]
            for name, (s, g) in configs.items()}


def layers_to_cover(curve: list[list[tuple[int, int]]], n: int) -> int | None:
    """First layer after which the reached runs cover every position 0..n-1 (None if they never do)."""
    return next((x for x, r in enumerate(curve) if r == [(0, n - 1)]), None)


def describe_reach(runs_: list[tuple[int, int]], n: int) -> str:
    """E.g. "513 of 2,300 positions (22%) in 2 runs: 0, 1704–2216"."""
    count = sum(b - a + 1 for a, b in runs_)
    shown = ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs_[:4]) + (" ..." if len(runs_) > 4 else "")
    where = f"in {len(runs_):,} runs: {shown}" if len(runs_) > 1 else shown
    return f"{count:,} of {n:,} positions ({count / n:.0%}) {where}"
