"""The blocked kernel: Longformer's band + global columns in one softmax, block by block (the CPU's fast path,
and the GPU's where FlexAttention cannot run).

Checked for equality against `reference.reference_attention` (tests/attention/test_banded.py).

How it works:
- Queries are cut into blocks of B rows; block b sees keys [b*B - w, b*B + B + w), a window of L = B + 2w keys
  (a slice of the padded keys, no copy when a chunk is one block). Scores (B, S + L) per block are one batched
  matmul into a reused contiguous buffer (contiguous, so PyTorch's CPU bmm makes one batched BLAS call instead of
  one per head): the window is taken S keys early, and those S columns, out of every row's band, are overwritten
  by the G global keys' scores (made for every row at once) and masked past them (S: G rounded up so that a row
  is a multiple of 64 bytes), so one softmax covers globals + band exactly as Longformer defines it; the globals'
  share of the output is added for every row at the end. Cells outside the
  band (relative offset beyond w: two B x B triangles) or at padding/global keys are masked, the triangles alone
  where the window holds no such key.
- The band layout (W + 1 columns) is a strided view of the block scores: cell (r, c) is block cell (r, S + r + c).
  On the CPU it is written into reused memory (`capture_pool`): fresh pages would fault on the first write.
- Dilation d: each residue class i mod d is run as an undilated band (`indexing.to_classes`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import LayerSpec
from . import capture_pool
from .indexing import from_classes, mask_to_classes, positions, to_classes
from .logits import soft_cap, softmax_with_sink


def _block_size(w: int, m: int) -> int:
    # Small blocks waste less of the (B + 2w) key window; too small and the batched matmuls get inefficient.
    # 64 rows were the fastest or within noise of it for w = 32..512 (4,096 tokens, 12 heads x 32, one core).
    b = min(64, max(16, 2 * w))
    return max(1, min(b, m))


# Scores held at once: ~2 MB keep the CPU's working set in its L2 caches (one 64-row block of 12 heads at w = 256:
# 1.8 MB; 2 such blocks per chunk ran ~15% slower); on a GPU, larger chunks mean fewer launches.
CHUNK_BYTES = {"cpu": 2 << 20, "cuda": 64 << 20}


def _matmul_into(dst: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
    """dst[...] = a @ b, written in place (dst: a strided view of a reused buffer, maybe of a wider dtype)."""
    if a.dtype == dst.dtype:
        torch.matmul(a, b, out=dst)
    else:
        dst.copy_(torch.matmul(a, b))


def band_core(q, k, v, key_ok, w: int, gk, gv, need_weights: bool, block: int | None = None,
              chunk_bytes: int | None = None, weights_dtype: torch.dtype = torch.float32, lse=None,
              causal: bool = False, global_ok: torch.Tensor | None = None, softcap: float | None = None,
              sinks: torch.Tensor | None = None, past_only: bool = False):
    """Undilated band + global columns for a batch of sequences.

    q, k, v: (Bt, h, m, hd), q already scaled;  key_ok: (Bt, m) bool, keys allowed in the band;
    gk, gv: (h, G, hd) local-projection keys/values of the global tokens (G may be 0).
    Returns out (Bt, h, m, hd) and, if need_weights, band (Bt, h, m, 2w + 1), to_global (Bt, h, m, G) and
    received (Bt, h, m) fp32: the band weight each key receives from the rows that count (key_ok rows:
    non-global, non-padding), summed while the probabilities are still in cache.
    lse: (Bt, h, m) fp32 log-sum-exp of each row's scores when it is already known (FlexAttention returns it):
    then only the weights are rebuilt, p = exp(score - lse), scores in fp32; out is None and v, gv are unused.
    causal: band keys only at or before the row (offsets <= 0); global_ok: (Bt, m, G) bool, the global columns
    each row may see (causal: the global tokens at or before it); None: all of them.
    softcap: scores become `softcap * tanh(s / softcap)` before the mask (`logits.soft_cap`); sinks: (h,) per-head
    sink logits in every row's denominator (`logits.softmax_with_sink`), ignored when lse is given (it then already
    holds the sink). Returns a fifth tensor, sink (Bt, h, m) fp32, each row's sink share, when sinks and
    need_weights are given (else None).
    past_only (causal only): band holds the past half alone, (Bt, h, m, w + 1) with the row's own weight last: the
    columns a causal row can fill (`AttentionWeights.causal_band`'s layout), with no zeros written for the rest.

    Blocks are processed `chunk_bytes` of scores at a time: the working set stays in cache and the temporaries
    reuse the same memory instead of faulting in fresh pages for every layer.
    """
    Bt, h, m, hd = q.shape
    w_full = w
    w = min(w, m - 1)  # offsets beyond m - 1 never hit a key; pad those band columns at the end
    B = block or _block_size(w, m)
    nb = -(-m // B)
    mp = nb * B
    right = 0 if causal else w  # keys after the block's last row that a row may see
    L = B + w + right  # the key window of a block: [b*B - w, b*B + B + right)
    G = gk.shape[1]
    S = G + (-(G + L)) % 16  # the slot columns before the window: the G global keys, then masked ones so that each
    # row of scores (S + L floats) is a multiple of 64 bytes (one global token made every row odd: the batched
    # matmul and the softmax ran ~1.5x slower on rows of 1,089 floats than of 1,088 or 1,104)
    dev = q.device
    need_weights = need_weights or lse is not None
    # the scores' dtype: fp32 when rebuilding from an fp32 log-sum-exp (half-precision scores would not match it)
    sdt = torch.float32 if lse is not None else q.dtype

    qb = F.pad(q.to(sdt), (0, 0, 0, mp - m)).view(Bt, h, nb, B, hd)
    # (Bt, h, S + w + mp + right, hd): block b's window starts at row b*B with S keys no row of the block may see
    # (offsets below -w); their score columns hold the G global keys' scores instead (the rest masked), so the
    # chunk's scores (Bt, h, nc, B, S + L) are one matmul into a contiguous buffer (a batched BLAS call, not one call per head)
    kp = F.pad(k.to(sdt), (0, 0, S + w, mp - m + right))
    okp = F.pad(key_ok, (w, mp - m + right), value=False)  # (Bt, mp + w + right)
    r = torch.arange(B, device=dev).view(B, 1)
    c = torch.arange(L, device=dev).view(1, L)
    outside = (c < r) | (c > r + w + right)  # (B, L): key offset c - r - w beyond [-w, w] (causal: [-w, 0])
    bad_keys = ~okp.unfold(1, L, B)  # (Bt, nb, L): padding, global or beyond-the-text keys in each block's window
    # Masks: every block's two out-of-band triangles, columns [0, B) (keys before a row's band) and [L - B, L) (after
    # it), 2B of its L columns; then the bad keys' columns (on the CPU those columns alone, found with one host read
    # per call: a masked fill of every chunk holding one cost ~4% of a run with 16 global tokens; on a GPU a masked
    # fill of every chunk, with no host sync).
    # the triangles as upper bounds, +inf inside the band and finfo.min outside: a `minimum` with them is the masked
    # fill, and runs ~5x faster than masked_fill_ with a broadcast mask
    fmin = torch.finfo(torch.float32).min
    triangles = torch.stack((outside[:, :B], outside[:, L - B:]))  # (2, B, B)
    cap = torch.full((2, B, B), float("inf"), device=dev).masked_fill_(triangles, fmin)

    chunk_bytes = chunk_bytes or CHUNK_BYTES.get(dev.type, CHUNK_BYTES["cpu"])
    cb = max(1, min(nb, chunk_bytes // max(1, Bt * h * B * (L + S) * 4)))  # blocks per chunk
    # scores of a chunk, reused by every chunk: the S slot columns (G global keys first), then the window's L
    sbuf = torch.empty(Bt, h, cb, B, S + L, device=dev)
    bad_in = None
    if dev.type == "cpu":  # each chunk's bad keys as (sequence, block, column): only those columns are written
        pairs = bad_keys.nonzero()  # (P, 3)
        chunk_of = pairs[:, 1] // cb
        pairs = pairs[torch.argsort(chunk_of, stable=True)]
        bad_in = torch.split(pairs, torch.bincount(chunk_of, minlength=-(-nb // cb)).tolist())
    if G:  # the global columns of every row at once (per block they would be G-column matmuls, mostly overhead)
        gscores = torch.matmul(qb.view(Bt, h, mp, hd), gk.to(sdt).transpose(-1, -2)[None]).view(Bt, h, nb, B, G)
    if lse is None:
        vp = F.pad(v, (0, 0, w, mp - m + right))
        out = q.new_empty(Bt, h, nb, B, hd, dtype=v.dtype)
        obuf = q.new_empty(Bt, h, cb, B, hd, dtype=v.dtype)  # a chunk's output, contiguous for the batched matmul
        gprobs = torch.empty(Bt, h, nb, B, G, device=dev, dtype=v.dtype) if G else None  # out's global part: at the end
    else:
        # rows without any key have lse = -inf: +inf makes their weights 0 instead of NaN
        lse = F.pad(lse.masked_fill(lse == float("-inf"), float("inf")), (0, mp - m)).view(Bt, h, nb, B, 1)
        out = None
    # captured weights are written once, straight in their storage dtype (fp16 halves that traffic)
    # causal: only offsets -w..0 are computed; the right half of the band layout stays 0
    past_only = past_only and causal
    band_cols = w + 1 if past_only else 2 * w + 1
    band = None
    if need_weights:  # on the CPU from reused memory: fresh pages would fault on the first write (`capture_pool`)
        shape = (Bt, h, nb, B, band_cols)
        band = torch.zeros(shape, device=dev, dtype=weights_dtype) if causal and not past_only else \
            capture_pool.empty(shape, weights_dtype, dev)
    width = w + 1 + right  # band columns the window holds
    to_global = torch.empty(Bt, h, nb, B, G, device=dev, dtype=weights_dtype) if need_weights else None
    if need_weights:
        received = torch.zeros(Bt, h, mp + 2 * w, device=dev)  # the padded key axis of kp (and room to spare)
        rows_ok = F.pad(key_ok, (0, mp - m), value=False).view(Bt, 1, nb, 1, B).float()
        # blocks whose rows all count (CPU): their column sums are a plain sum over rows
        all_rows = rows_ok.view(Bt, nb, B).bool().all(-1).all(0).tolist() if dev.type == "cpu" else [False] * nb
        # block b's window starts at padded key b * B: where its column sums land in `received`
        window_keys = torch.arange(nb, device=dev).view(nb, 1) * B + torch.arange(L, device=dev)  # (nb, L)
    sink = torch.zeros(Bt, h, nb, B, device=dev) if need_weights and sinks is not None and lse is None else None
    if global_ok is not None and G:
        gok = F.pad(global_ok, (0, 0, 0, mp - m), value=False).view(Bt, 1, nb, B, G)
    for c0 in range(0, nb, cb):
        c1 = min(nb, c0 + cb)
        nc = c1 - c0
        rows = slice(c0 * B, (c1 - 1) * B + L)  # the chunk's band keys in vp
        # the blocks' key windows with the S slots before them, a view of kp (a copy is made inside matmul only
        # when the chunk holds several blocks: one block's window is a plain slice)
        scores = sbuf[:, :, :nc]  # (Bt, h, nc, B, S + L)
        qc = qb[:, :, c0:c1]
        _matmul_into(scores, qc, kp[:, :, c0 * B:(c1 - 1) * B + S + L].unfold(2, S + L, B))  # (Bt, h, nc, hd, S+L)
        if G:  # the slots' scores (keys out of every row's band) replaced by the global keys' scores
            scores[..., :G] = gscores[:, :, c0:c1]
        scores = soft_cap(scores, softcap, inplace=True)  # the chunk's own buffer: capped where it lies
        if S > G:  # the alignment slots: out of every row (after the cap, which would make them finite)
            scores[..., G:S] = fmin
        band_scores = scores[..., S:]  # (Bt, h, nc, B, L)
        # finfo.min rather than -inf: rows with no allowed key (block padding) stay finite instead of NaN.
        torch.minimum(band_scores[..., :B], cap[0], out=band_scores[..., :B])
        torch.minimum(band_scores[..., L - B:], cap[1], out=band_scores[..., L - B:])
        if bad_in is not None:
            bad = bad_in[c0 // cb]
            if len(bad):  # (P, h, B) scores: each bad key's column in its block
                band_scores[bad[:, 0], :, bad[:, 1] - c0, :, bad[:, 2]] = fmin
        else:
            band_scores.masked_fill_(bad_keys[:, None, c0:c1, None], fmin)  # (Bt, 1, nc, 1, L): whole columns
        if global_ok is not None and G:
            scores[..., :G].masked_fill_(~gok[:, :, c0:c1], fmin)
        del band_scores
        if lse is None:
            probs, share = softmax_with_sink(scores, sinks, inplace=True)  # (Bt, h, nc, B, S + L), (Bt, h, nc, B)
            del scores
            if share is not None and need_weights:
                sink[:, :, c0:c1] = share
            p = probs.to(v.dtype)
            torch.matmul(p[..., S:], vp[:, :, rows].unfold(2, L, B).transpose(-1, -2), out=obuf[:, :, :nc])
            out[:, :, c0:c1] = obuf[:, :, :nc]
            if G:
                gprobs[:, :, c0:c1] = p[..., :G]
        else:
            probs = scores.sub_(lse[:, :, c0:c1]).exp_()
        if need_weights:
            s = probs.stride()  # band cell (r, c) is window cell (r, S + r + c)
            band[:, :, c0:c1, :, :width] = probs.as_strided((Bt, h, nc, B, width), (s[0], s[1], s[2], s[3] + 1, 1),
                                                            probs.storage_offset() + S)
            to_global[:, :, c0:c1] = probs[..., :G]
            if all(all_rows[c0:c1]):
                col = probs[..., S:].sum(-2)  # (Bt, h, nc, L)
            else:
                col = torch.matmul(rows_ok[:, :, c0:c1], probs[..., S:])[..., 0, :]
            received.index_add_(2, window_keys[c0:c1].flatten(), col.flatten(2))  # overlapping windows add up
    if out is not None:
        out = out.view(Bt, h, mp, hd)
        if G:  # the global keys' share of every row's output, in one matmul
            out += torch.matmul(gprobs.view(Bt, h, mp, G), gv.to(v.dtype)[None])
        out = out[:, :, :m]
    if not need_weights:
        return out, None, None, None, None
    band = band.view(Bt, h, mp, band_cols)[:, :, :m]
    if w < w_full:
        band = F.pad(band, (w_full - w, 0 if past_only else w_full - w))
    sink = None if sink is None else sink.view(Bt, h, mp)[:, :, :m]
    return out, band, to_global.view(Bt, h, mp, G)[:, :, :m], received[:, :, w:w + m], sink


def _dilated(q, k, v, key_ok, w: int, d: int, gk, gv, need_weights: bool, block=None, weights_dtype=torch.float32,
             causal: bool = False, global_ok=None, softcap=None, sinks=None):
    """Band attention with dilation d for heads (h, n, hd): each residue class i mod d is an undilated band.
    global_ok: (n, G) bool or None; softcap, sinks (h,): see `band_core`. Causal: the band is the past half alone,
    (h, n, w + 1)."""
    n = q.shape[1]
    d = min(d, n)  # d >= n reaches no key but the token itself: the same as d = n, without padding to d rows
    gok = None if global_ok is None else to_classes(global_ok[None].to(torch.uint8), d)[:, 0].bool()  # (d, m, G)
    out, band, tog, rec, sink = band_core(to_classes(q, d), to_classes(k, d), to_classes(v, d),
                                          mask_to_classes(key_ok, d), w, gk, gv, need_weights, block,
                                          weights_dtype=weights_dtype, causal=causal, global_ok=gok, softcap=softcap,
                                          sinks=sinks, past_only=causal)
    if not need_weights:
        return from_classes(out, n), None, None, None, None
    per_row = lambda x: None if x is None else from_classes(x.unsqueeze(-1), n)[..., 0]  # (d, h, m) -> (h, n)
    return from_classes(out, n), from_classes(band, n), from_classes(tog, n), per_row(rec), per_row(sink)


def blocked_local(qs, k, v, band_ok, spec: LayerSpec, gk, gv, need_weights: bool, weights_dtype, block=None,
                  causal: bool = False, global_ok=None, softcap: float | None = None, sinks=None):
    """Band + global columns of every head with the blocked kernel, heads grouped by dilation.
    Returns out (H, n, hd) and, if need_weights, band (H, n, W + 1) (causal: its past half, (H, n, W/2 + 1)),
    to_global (H, n, G), received (H, n) and sink (H, n), each row's sink share (None without sinks). softcap,
    sinks (H,): see `band_core`."""
    H, n, hd = qs.shape
    w, G, dev = spec.one_sided, gk.shape[1], qs.device
    dilations = sorted(set(spec.dilation))
    if len(dilations) == 1:
        return _dilated(qs, k, v, band_ok, w, dilations[0], gk, gv, need_weights, block, weights_dtype, causal,
                        global_ok, softcap, sinks)
    out = qs.new_empty(H, n, hd)
    band = torch.zeros(H, n, w + 1 if causal else 2 * w + 1, device=dev, dtype=weights_dtype) if need_weights else None
    tog = torch.zeros(H, n, G, device=dev, dtype=weights_dtype) if need_weights else None
    rec = torch.zeros(H, n, device=dev) if need_weights else None
    sink = torch.zeros(H, n, device=dev) if need_weights and sinks is not None else None
    for d in dilations:
        heads = positions(tuple(i for i, x in enumerate(spec.dilation) if x == d), dev)
        o, b, t, r, s = _dilated(qs[heads], k[heads], v[heads], band_ok, w, d, gk[heads], gv[heads], need_weights,
                                 block, weights_dtype, causal, global_ok, softcap,
                                 None if sinks is None else sinks[heads])
        out[heads] = o
        if need_weights:
            band[heads], tog[heads], rec[heads] = b, t, r
            if s is not None:
                sink[heads] = s
    return out, band, tog, rec, sink
