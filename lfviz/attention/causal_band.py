"""The causal band kernel: a language model's sliding-window (or full) attention with sinks, grouped-query heads
kept grouped, and the capture written straight in the causal layout (the band's past half). The CPU's path for
`banded.banded_attention(causal=True)`; `blocked.band_core` stays the path for mixed per-head dilation and the
GPU's fallback.

Semantics (`mask.attends` with causal=True): a row at position p sees the band keys p - w .. p that are allowed
(`key_ok`: not global, not padding) and the global keys at or before it (`global_ok`), in one softmax (with a
learned sink logit in the denominator when `sinks` is given, after soft-capping when `softcap` is given,
`logits.py`). Checked for equality against `reference.reference_attention` (tests/attention/test_causal_band.py,
and through `banded_attention` in tests/attention/test_banded.py).

How it works:
- Grouped-query attention without repeating k and v: the g query heads of one key/value head are stacked as g*B
  rows of one matmul against that head's key window, so each window is read once for all g heads.
- Queries are cut into blocks of B rows. A block whose window lies inside the text (b*B >= w) sees the B + w keys
  [b*B - w, b*B + B): such blocks run `CHUNK_BYTES` of scores at a time with one batched matmul. The first blocks
  (b*B < w; every block of a full layer, w = n - 1) see only [0, b*B + B): they run one at a time against that
  slice of the keys (no padded keys), so a full causal layer costs the triangle, not the square.
- The band's past half, column j = key p - w + j (own weight at j = w), is a strided view of a block's
  probabilities: row r, column j is window cell r + j. The first blocks' probabilities are placed in a buffer
  whose left part stays zero (keys before 0) to read them the same way.
- received (column sums) only on request (`received=True`): `headstats.received` derives it from the band
  otherwise.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from .logits import soft_cap, softmax_with_sink

# Scores held at once on the CPU: 1 MiB (this 2-core EPYC's L2 a core) keeps a chunk's probabilities in cache for
# the second matmul; SmolLM2's 30 layers with capture, in one process: 0.35 s vs 0.39 s at 4 MiB (2026-12-03).
CHUNK_BYTES = 1 << 20
# Threads that each run a share of the query blocks with one intra-op thread (None: torch.get_num_threads() from
# PARALLEL_MIN_ROWS query rows up). 1: the caller's thread runs them all with its intra-op threads. On a loaded 2-core
# machine 2 were steadier and faster (no intra-op barriers waiting on a descheduled thread); quiet, slower (SmolLM2's
# 30 layers: 0.54 vs 0.32 s; 2026-12-03, bench/README "Causal LM"): hence 1.
WORKERS: int | None = 1
PARALLEL_MIN_ROWS = 4096  # query rows (batch x heads x positions)
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def block_size(w: int, m: int, g: int) -> int:
    """Query rows per block: small blocks waste less of the B + w key window; the g stacked heads keep the
    matmul tall enough (g * B rows) even when B is small."""
    b = 1 << max(4, min(7, (max(1, w // 4 if g > 1 else w // 2)).bit_length() - 1))  # a power of two, 16 .. 128
    return max(1, min(b, m))


def causal_band(q, k, v, key_ok, w: int, gk, gv, need_weights: bool, weights_dtype: torch.dtype = torch.float32,
                global_ok: torch.Tensor | None = None, softcap: float | None = None, sinks: torch.Tensor | None = None,
                received: bool = False, block: int | None = None, scale: float = 1.0, workers: int | None = None):
    """Causal band + global columns of a batch of sequences, grouped-query heads kept grouped.

    q:        (Bt, H, m, hd) queries, multiplied by `scale` here;  k, v: (Bt, Hkv, m, hd), H = g * Hkv: query
              head h reads key/value head h // g (transformers' `repeat_kv` order).
    key_ok:   (Bt, m) bool, keys allowed in the band;  w: band keys before the row (the row sees p - w .. p).
    gk, gv:   (Hkv, G, hd) the global tokens' keys/values (G may be 0);  global_ok: (Bt, m, G) bool, the global
              columns each row may see (None: all).
    softcap, sinks (H,) fp32: see `logits.py`.
    workers:  threads that run a share of the query blocks each (default `WORKERS`, else on the CPU
              torch.get_num_threads() from `PARALLEL_MIN_ROWS` query rows up, else 1); `received` runs in one.
    Returns out (Bt, H, m, hd) (a view of a (Bt, m, H, hd) tensor: the layout a model's output projection reads
    without another copy) and, if need_weights (else None each): band (Bt, H, m, w + 1) in `weights_dtype`,
    the past half with the row's own weight last (column j: key p - w + j; 0 outside the text and at keys not
    allowed); to_global (Bt, H, m, G); received (Bt, H, m) fp32 column sums over key_ok rows when `received`,
    else None; sink (Bt, H, m) fp32 each row's sink share when sinks are given, else None.
    """
    Bt, H, m, hd = q.shape
    Hkv, G = k.shape[1], gk.shape[1]
    g = H // Hkv
    w_full = w
    w = min(w, m - 1)  # offsets beyond m - 1 never reach a key; their band columns are padded at the end
    B = block or block_size(w, m, g)
    nb = -(-m // B)
    mp = nb * B
    L = B + w  # a full window: keys [b*B - w, b*B + B)
    first = min(nb, -(-w // B))  # blocks whose window would start before key 0
    dev, sdt = q.device, q.dtype
    hide = -1e30  # added to a hidden cell's score (finite: a row with no key stays finite); exp() makes it 0
    if workers is None:
        workers = WORKERS or (torch.get_num_threads() if dev.type == "cpu" and Bt * H * m >= PARALLEL_MIN_ROWS else 1)
    workers = max(1, min(workers, nb))

    # (Bt, Hkv, nb, g*B, hd): the g heads of a key/value head stacked block by block, scaled in the same pass
    qb = q.new_empty(Bt, Hkv, nb, g * B, hd)
    qsrc = q if mp == m else F.pad(q, (0, 0, 0, mp - m))
    torch.mul(qsrc.reshape(Bt, Hkv, g, nb, B, hd).transpose(2, 3), scale, out=qb.view(Bt, Hkv, nb, g, B, hd))
    kp = F.pad(k, (0, 0, 0, mp - m))  # (Bt, Hkv, mp, hd)
    vp = F.pad(v, (0, 0, 0, mp - m))
    okp = F.pad(key_ok, (0, mp - m), value=False)  # (Bt, mp)
    gok = None
    if G and global_ok is not None:
        gok = F.pad(~global_ok, (0, 0, 0, mp - m), value=True).view(Bt, 1, nb, 1, B, G)  # True: hidden
    sink_view = None if sinks is None else sinks.to(dev, torch.float32).view(1, Hkv, 1, g, 1, 1)

    out = q.new_empty(Bt, nb, B, Hkv, g, hd)  # the (Bt, mp, H, hd) output, written block by block
    if need_weights:
        band = torch.empty(Bt, Hkv, g, nb, B, w + 1, device=dev, dtype=weights_dtype)
        to_global = torch.empty(Bt, Hkv, g, nb, B, G, device=dev, dtype=weights_dtype)
        share = torch.zeros(Bt, Hkv, g, nb, B, device=dev) if sinks is not None else None
        rec = torch.zeros(Bt, Hkv, g, mp, device=dev) if received else None
        rows_ok = okp.view(Bt, 1, nb, 1, 1, B).to(torch.float32) if received else None

    def softmax(scores, nc):  # scores (Bt, Hkv, nc, g*B, K + G) fp32, masked -> probs viewed by head
        s = scores.view(Bt, Hkv, nc, g, B, -1)
        probs, sh = softmax_with_sink(s, sink_view, inplace=sinks is not None)
        return probs, sh  # (Bt, Hkv, nc, g, B, K + G), (Bt, Hkv, nc, g, B) or None

    def keep(probs, sh, c0, nc, src):
        """Captured weights of blocks c0 .. c0 + nc: src (Bt, Hkv, nc, g, B, >= B + w) fp32 holds the band cells
        at (r, r + j)."""
        s = src.stride()
        cells = src.as_strided((Bt, Hkv, g, nc, B, w + 1), (s[0], s[1], s[3], s[2], s[4] + 1, 1), src.storage_offset())
        band[:, :, :, c0:c0 + nc].copy_(cells)
        if G:
            to_global[:, :, :, c0:c0 + nc].copy_(probs[..., -G:].transpose(2, 3))
        if sh is not None:
            share[:, :, :, c0:c0 + nc].copy_(sh.transpose(2, 3))

    def first_block(b, pad_buf):  # keys [0, b*B + B): no padded keys
        e = b * B + B
        keys = kp[:, :, :e]  # (Bt, Hkv, e, hd)
        vals = vp[:, :, :e]
        if G:
            keys = torch.cat([keys, gk.view(1, Hkv, G, hd).expand(Bt, -1, -1, -1).to(sdt)], 2)
            vals = torch.cat([vals, gv.view(1, Hkv, G, hd).expand(Bt, -1, -1, -1).to(sdt)], 2)
        scores = torch.matmul(qb[:, :, b], keys.transpose(-1, -2)).float()  # (Bt, Hkv, g*B, e + G)
        scores = soft_cap(scores, softcap, inplace=True)
        pos = torch.arange(b * B, e, device=dev).view(B, 1)
        kk = torch.arange(e, device=dev).view(1, e)
        hidden = (kk > pos) | (kk < pos - w) | ~okp[:, None, :e]  # (Bt, B, e)
        s6 = scores.view(Bt, Hkv, 1, g, B, e + G)
        s6[..., :e].add_(torch.zeros(hidden.shape, device=dev).masked_fill_(hidden, hide).view(Bt, 1, 1, 1, B, e))
        if gok is not None:
            s6[..., e:].masked_fill_(gok[:, :, b:b + 1], hide)
        probs, sh = softmax(scores, 1)
        o = torch.matmul(probs.view(Bt, Hkv, g * B, e + G).to(sdt), vals)  # (Bt, Hkv, g*B, hd)
        out[:, b].copy_(o.view(Bt, Hkv, g, B, hd).permute(0, 3, 1, 2, 4))
        if need_weights:
            # probabilities placed at column w - b*B of a (g*B, B + w) row so that band cell (r, j) is cell r + j;
            # keys before w - b*B stay 0 (before the text)
            pad_buf[..., w - b * B:].copy_(probs[..., :e])
            keep(probs, sh, b, 1, pad_buf)
            if received:
                col = torch.matmul(rows_ok[:, :, b:b + 1], probs[..., :e])[..., 0, :]  # (Bt, Hkv, 1, g, e)
                rec[..., :e] += col[:, :, 0]

    if first < nb:
        r = torch.arange(B, device=dev).view(B, 1)
        c = torch.arange(L, device=dev).view(1, L)
        outside = (c < r) | (c > r + w)  # (B, L): window cell c is key b*B - w + c, row r is position b*B + r
        starts = torch.arange(first, nb, device=dev) * B - w  # first key of each window
        okw = okp[:, first * B - w:].unfold(1, L, B)  # (Bt, nb - first, L)
        hidden = outside.view(1, 1, B, L) | ~okw.view(Bt, -1, 1, L)  # (Bt, nb - first, B, L)
        # as a bias added to the scores: one vectorised add, where a broadcast masked_fill_ costs ~10x more
        bias = torch.zeros(hidden.shape, device=dev).masked_fill_(hidden, hide)
        cb = max(1, min(nb - first, CHUNK_BYTES // max(1, Bt * H * B * (L + G) * 4)))  # blocks per chunk

    def full_blocks(b0, b1):  # windows [b*B - w, b*B + B) of blocks b0 .. b1, CHUNK_BYTES of scores at a time
        kbuf = q.new_empty(Bt, Hkv, cb, L + G, hd)  # the windows + the G global keys, reused by every chunk
        vbuf = q.new_empty(Bt, Hkv, cb, L + G, hd)
        if G:
            kbuf[..., L:, :] = gk.view(1, Hkv, 1, G, hd)
            vbuf[..., L:, :] = gv.view(1, Hkv, 1, G, hd)
        for c0 in range(b0, b1, cb):
            c1 = min(b1, c0 + cb)
            nc = c1 - c0
            rows = slice(c0 * B - w, (c1 - 1) * B + B)
            kc, vc = kbuf[:, :, :nc], vbuf[:, :, :nc]
            kc[..., :L, :].copy_(kp[:, :, rows].unfold(2, L, B).transpose(-1, -2))  # (Bt, Hkv, nc, L, hd)
            vc[..., :L, :].copy_(vp[:, :, rows].unfold(2, L, B).transpose(-1, -2))
            scores = torch.matmul(qb[:, :, c0:c1], kc.transpose(-1, -2)).float()  # (Bt, Hkv, nc, g*B, L + G)
            scores = soft_cap(scores, softcap, inplace=True)
            s6 = scores.view(Bt, Hkv, nc, g, B, L + G)
            s6[..., :L].add_(bias[:, None, c0 - first:c1 - first, None])
            if gok is not None:
                s6[..., L:].masked_fill_(gok[:, :, c0:c1], hide)
            probs, sh = softmax(scores, nc)
            o = torch.matmul(probs.view(Bt, Hkv, nc, g * B, L + G).to(sdt), vc)  # (Bt, Hkv, nc, g*B, hd)
            out[:, c0:c1].copy_(o.view(Bt, Hkv, nc, g, B, hd).permute(0, 2, 4, 1, 3, 5))
            if need_weights:
                keep(probs, sh, c0, nc, probs)
                if received:
                    col = torch.matmul(rows_ok[:, :, c0:c1], probs[..., :L])[..., 0, :]  # (Bt, Hkv, nc, g, L)
                    idx = (starts[c0 - first:c1 - first].view(nc, 1) + torch.arange(L, device=dev)).flatten()
                    rec.index_add_(3, idx, col.transpose(2, 3).reshape(Bt, Hkv, g, nc * L))

    def part(b0, b1):  # blocks b0 .. b1: every block writes its own rows of out, band, to_global, share
        if b0 < first:
            pad_buf = torch.zeros(Bt, Hkv, 1, g, B, L, device=dev) if need_weights else None
            for b in range(b0, min(b1, first)):
                first_block(b, pad_buf)
        if max(b0, first) < b1:
            full_blocks(max(b0, first), b1)

    # `received` sums overlapping windows into one tensor: one thread; gradients: the caller's thread
    parallel = (workers or 1) > 1 and not received and not (torch.is_grad_enabled() and q.requires_grad)
    ranges = _split(nb, first, B, L, workers) if parallel else [(0, nb)]
    if len(ranges) == 1:
        part(0, nb)
    else:
        _in_parallel(part, ranges)

    out = out.view(Bt, mp, H, hd)[:, :m].transpose(1, 2)  # (Bt, H, m, hd)
    if not need_weights:
        return out, None, None, None, None
    band = band.view(Bt, H, mp, w + 1)[:, :, :m]
    if w < w_full:
        band = F.pad(band, (w_full - w, 0))
    return (out, band, to_global.view(Bt, H, mp, G)[:, :, :m],
            None if rec is None else rec.view(Bt, H, mp)[:, :, :m],
            None if share is None else share.view(Bt, H, mp)[:, :, :m])


def _split(nb: int, first: int, B: int, L: int, parts: int) -> list[tuple[int, int]]:
    """Blocks 0 .. nb cut into min(parts, nb) contiguous ranges of about equal work (a first block b reads
    (b + 1) * B keys, the others L), none empty."""
    parts = max(1, min(parts, nb))
    cost = [(b + 1) * B if b < first else L for b in range(nb)]
    total, ranges, b0, acc = sum(cost), [], 0, 0
    for b in range(nb - 1):
        acc += cost[b]
        left = parts - len(ranges) - 1  # ranges still to cut after this one
        if left and (acc >= total * (len(ranges) + 1) / parts or nb - b - 1 == left):  # or one block each left
            ranges.append((b0, b + 1))
            b0 = b + 1
    ranges.append((b0, nb))
    return ranges


def _in_parallel(fn, ranges):  # the workers copy with Tensor.copy_, which runs without the GIL
    """fn(b0, b1) for every range, each on its own pool thread with one intra-op thread (set per thread: the
    caller's own count is untouched), under the caller's inference mode; waits for all, raises the first error."""
    inference = torch.is_inference_mode_enabled()

    def task(b0, b1):
        with torch.inference_mode(inference), torch.no_grad():
            fn(b0, b1)

    with _pools_lock:
        pool = _pools.get(len(ranges))
        if pool is None:
            pool = _pools[len(ranges)] = ThreadPoolExecutor(len(ranges), "causal_band", torch.set_num_threads, (1,))
    for f in [pool.submit(task, *r) for r in ranges]:
        f.result()
