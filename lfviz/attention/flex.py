"""Longformer's local attention (band + global columns) through FlexAttention: the GPU path.

Checked against the dense reference like every fast path (tests/attention/test_banded.py and test_flex.py on the
CPU, tests/gpu/test_gpu.py on CUDA).

Layout: FlexAttention sees batch 1, the layer's H heads, and one sequence of T slots per head.
- Dilation d (per head): the n positions are regrouped into d residue classes of m = ceil(n / d) slots
  (`indexing.to_classes`); each class is an undilated band. Attending over the dilated span directly would visit
  d times as many key blocks for the same number of keys.
- A head's sequence is its d classes end to end, one *segment* each: the class's m slots, then the G global
  tokens' keys (local projections), so one softmax covers band + global columns as Longformer defines it, then
  empty slots up to P, a multiple of BLOCK. T is the longest head's d * P.
- Why one sequence per head: FlexAttention compiles a kernel per batch size and head count, and past
  torch._dynamo's recompile limit (8) it silently runs uncompiled, quadratic in T. With batch 1 and the model's
  head count, any mix of per-head dilations is one call per layer, and only T varies (compiled as dynamic).
- Global *rows* stay out of this mask (one block row would do all the work): `banded.banded_attention`
  computes them apart.
- Causal (a language model): a key is attended only from the query positions at or after its own. Within a
  class, slot order is position order, so each key slot carries the first query slot of its segment that may
  see it (`first_seen`: a band key its own slot, an appended global key the first class slot at or after its
  global token), one int32 read per key like the codes. The block mask drops the blocks above each segment's
  diagonal; the global key blocks stay listed and the mask function sorts them out.
- The block mask comes from the band's geometry (`band_block_mask`), not from evaluating the mask on every pair;
  the mask function reads int32 codes (bool/int8 reads were 15x slower when measured on an H100).
- Weights for capture: FlexAttention returns each row's log-sum-exp; `blocked.band_core` rebuilds the band block
  by block as p = exp(q.k - lse), straight into the storage dtype, without a second softmax or the values.
- Soft-capped logits (Gemma 2) are a `score_mod`; learned sinks (gpt-oss) cannot be a score_mod (the sink has no
  key), so the output is rescaled afterwards by 1 - the sink's share, read from the log-sum-exp (`logits.py`).
"""
from __future__ import annotations

import functools
import importlib.util
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch._dynamo.exc import TorchDynamoException
from torch.nn.attention.flex_attention import AuxRequest, BlockMask, flex_attention

from .blocked import band_core
from .indexing import from_classes, mask_to_classes, positions, to_classes
from .logits import sink_share

BLOCK = 128  # FlexAttention's block size, queries and keys
NO_KEY, BAND_KEY, GLOBAL_KEY = 0, 1, 2  # kind of a key slot, the low 2 bits of its code; the segment is above
MIN_HEAD_DIM = 16  # Triton's matrix tiles are at least 16 wide: FlexAttention refuses head_dim 8 on a GPU

_LOCK = threading.Lock()  # torch.compile is not safe to enter from several threads (browser tabs) at once
_FAILED: dict[tuple[str, int], str] = {}  # (device type, head_dim) -> why compiling failed there


class FlexUnavailable(RuntimeError):
    """FlexAttention could not be compiled for this device and head size (an old GPU, an untileable head size)."""


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def available(device: torch.device, head_dim: int = 64) -> bool:
    """Whether `flex_local` runs fused on `device`: a CUDA GPU, Triton to compile for it, heads wide enough, and
    no earlier failure to compile for this head size."""
    dev = torch.device(device)
    return (dev.type == "cuda" and head_dim >= MIN_HEAD_DIM and _triton_installed()
            and (dev.type, head_dim) not in _FAILED)


def suits(n: int, dilation) -> bool:
    """Whether every residue class fills at least one block: shorter classes make the segments mostly padding
    (dilation near the text length), where the blocked kernel is quick anyway."""
    return n >= BLOCK * max(dilation)


@functools.cache
def _compiled():
    return torch.compile(flex_attention, dynamic=True)


@functools.cache
def soft_cap_mod(cap: float, device: torch.device):
    """The score_mod of `logits.soft_cap`: one function per cap, so a compiled kernel is reused across layers. The
    cap is a tensor, as the mask's window is: a Python float closed over fails to compile with dynamic shapes."""
    c = torch.tensor(cap, dtype=torch.float32, device=device)

    def score_mod(score, b, h, q_idx, kv_idx):
        return torch.tanh(score / c) * c

    return score_mod


# -- the layout ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """Heads sharing one dilation d: d segments of P slots each, the first m of them the class's positions."""

    d: int
    heads: torch.Tensor  # (h,) long, head indices
    m: int
    P: int
    key_ok: torch.Tensor  # (d, m) bool, band-allowed keys of each class


@dataclass(frozen=True)
class Layout:
    groups: tuple[Group, ...]
    T: int  # slots per head, a multiple of BLOCK
    codes: torch.Tensor  # (H, T) int32, `_segment_codes` of each head; 0 past its d * P slots
    block_mask: BlockMask
    first: torch.Tensor | None = None  # causal only: (H, T) int32 `first_seen`


def _segment_codes(group: Group, num_global: int) -> torch.Tensor:
    """(d * P,) int32 codes of a group's sequence: segment r's slots hold r << 2 | kind (BAND_KEY or NO_KEY for
    the m class slots, GLOBAL_KEY for the G appended keys, NO_KEY after)."""
    d, m, P = group.d, group.m, group.P
    kind = torch.full((d, P), NO_KEY, dtype=torch.int32, device=group.key_ok.device)
    kind[:, :m] = group.key_ok.to(torch.int32) * BAND_KEY
    kind[:, m:m + num_global] = GLOBAL_KEY
    segment = torch.arange(d, dtype=torch.int32, device=kind.device).view(d, 1) << 2
    return (segment | kind).view(d * P)


def first_seen(groups: tuple["Group", ...], H: int, T: int, global_pos: torch.Tensor) -> torch.Tensor:
    """(H, T) int32, for the causal mask: per key slot, the first query slot that may attend it. Class r's slot t
    holds position r + t * d, so a band key is seen from its own slot on; the global token at position p from
    class r's slot ceil((p - r) / d) on (of the same segment); empty slots from nowhere (2**30)."""
    dev = global_pos.device
    first = torch.full((H, T), 2**30, dtype=torch.int32, device=dev)
    G = global_pos.shape[0]
    for g in groups:
        seg = torch.full((g.d, g.P), 2**30, dtype=torch.int64, device=dev)
        start = torch.arange(g.d, device=dev).view(g.d, 1) * g.P  # each segment's first slot
        seg[:, :g.m] = start + torch.arange(g.m, device=dev).view(1, g.m)
        r = torch.arange(g.d, device=dev).view(g.d, 1)
        from_slot = torch.div(global_pos.view(1, G) - r + g.d - 1, g.d, rounding_mode="floor")  # ceil((p - r) / d)
        seg[:, g.m:g.m + G] = start + from_slot.clamp(min=0)
        first[g.heads, :g.d * g.P] = seg.to(torch.int32).view(1, -1)
    return first


def band_mask_mod(codes: torch.Tensor, w: int, first: torch.Tensor | None = None):
    """The mask predicate (`mask.attends`) in this layout (codes: (H, T) int32, `_segment_codes` per head): query
    slot q attends key slot kv of the same segment that is a band key within w slots, or a global key; with
    `first` (causal: `first_seen`), only keys at or before the query's position."""
    w = torch.tensor(w, dtype=torch.int32, device=codes.device)  # a tensor, not a constant: no recompile per window

    def mask_mod(b, h, q_idx, kv_idx):
        key = codes[h, kv_idx]
        kind = key & 3
        same = (codes[h, q_idx] >> 2) == (key >> 2)
        return same & ((kind == GLOBAL_KEY) | ((kind == BAND_KEY) & ((q_idx - kv_idx).abs() <= w)))

    if first is None:
        return mask_mod

    def causal_mod(b, h, q_idx, kv_idx):
        return mask_mod(b, h, q_idx, kv_idx) & (q_idx >= first[h, kv_idx])

    return causal_mod


def _group_blocks(group: Group, codes: torch.Tensor, w: int, causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(d * P/B, d * P/B) bool listed-but-partial and full block pairs of one group's sequence: each segment's
    own blocks on the diagonal, nothing across segments, nothing for query blocks past the m class slots.
    Causal: no band block after the query block's last row; full only if every key is at or before every row."""
    d, m, nk = group.d, group.m, group.P // BLOCK
    nq = -(-m // BLOCK)
    dev = codes.device
    qb = torch.arange(nk, device=dev).view(nk, 1)
    kb = torch.arange(nk, device=dev).view(1, nk)
    q_first, q_last = qb * BLOCK, (qb * BLOCK + BLOCK).clamp(max=m) - 1
    k_first, k_last = kb * BLOCK, kb * BLOCK + BLOCK - 1
    after = 0 if causal else w  # how far past a row its keys may lie
    near = (k_first <= q_last + after) & (k_last >= q_first - w) & (qb < nq)  # (nk, nk): some pair within w
    within = (k_last - q_first <= after) & (q_last - k_first <= w) & (qb < nq)  # every pair within w
    kind = (codes & 3).view(d, 1, nk, BLOCK)
    band_keys = kind == BAND_KEY
    listed = (near & band_keys.any(-1)) | ((kind == GLOBAL_KEY).any(-1) & (qb < nq))  # (d, nk, nk)
    full = within & band_keys.all(-1)
    return torch.block_diag(*(listed & ~full)), torch.block_diag(*full)


def layout_codes(groups: tuple[Group, ...], H: int, T: int, num_global: int) -> torch.Tensor:
    """(H, T) int32: each head's `_segment_codes`, then 0 (segment 0, NO_KEY) up to T."""
    codes = torch.zeros(H, T, dtype=torch.int32, device=groups[0].key_ok.device)
    for g in groups:
        c = _segment_codes(g, num_global)
        codes[g.heads, :c.shape[0]] = c
    return codes


def band_block_mask(groups: tuple[Group, ...], codes: torch.Tensor, w: int,
                    first: torch.Tensor | None = None) -> BlockMask:
    """FlexAttention's BlockMask for `band_mask_mod(codes, w)`, from the band's geometry, with no sync.

    A (query block, key block) pair of a segment is listed when some key of the block is a band key within w of
    the query block's rows, or a global key; it is *full* (no mask evaluated) when every key of the block is a
    band key within w of every row. Listing a pair that turns out empty costs time, never correctness.
    first: causal (`first_seen`): the mask of `band_mask_mod(codes, w, first)`."""
    H, T = codes.shape
    nb = T // BLOCK
    partial = torch.zeros(H, nb, nb, dtype=torch.bool, device=codes.device)
    full = torch.zeros(H, nb, nb, dtype=torch.bool, device=codes.device)
    for g in groups:
        span = g.d * g.P
        p, f = _group_blocks(g, codes[g.heads[0], :span], w, first is not None)
        partial[g.heads, :span // BLOCK, :span // BLOCK] = p
        full[g.heads, :span // BLOCK, :span // BLOCK] = f

    def ordered(blocks):  # (H, nb, nb) bool -> counts (1, H, nb), indices (1, H, nb, nb): listed ones first
        order = torch.argsort(blocks.to(torch.int32), dim=-1, descending=True, stable=True)
        return blocks.sum(-1, dtype=torch.int32)[None], order.to(torch.int32)[None]

    return BlockMask.from_kv_blocks(*ordered(partial), *ordered(full), BLOCK_SIZE=BLOCK,
                                    mask_mod=band_mask_mod(codes, w, first), seq_lengths=(T, T),
                                    compute_q_blocks=False)  # only a backward pass needs them


_LAYOUTS: OrderedDict = OrderedDict()  # layout_key -> Layout; most recent last
_LAYOUTS_MAX = 32
_LAYOUTS_LOCK = threading.Lock()


def _layout(key_ok: torch.Tensor, dilation: tuple[int, ...], num_global: int, w: int, layout_key=None,
            global_pos: torch.Tensor | None = None) -> Layout:
    """The groups, T and the block mask. With a `layout_key` (a hashable that determines key_ok and global_pos)
    they are built once and reused, e.g. by every layer of one forward pass. global_pos: (G,) the global tokens'
    positions, given for a causal layout only."""
    causal = global_pos is not None
    key = None if layout_key is None else (layout_key, dilation, num_global, w, causal, key_ok.device)
    if key is not None:
        with _LAYOUTS_LOCK:
            if key in _LAYOUTS:
                _LAYOUTS.move_to_end(key)
                return _LAYOUTS[key]
    n, dev = key_ok.shape[0], key_ok.device
    groups = []
    for d in sorted(set(dilation)):
        heads = positions(tuple(h for h, x in enumerate(dilation) if x == d), dev)
        d_eff = min(d, n)  # as in blocked._dilated: d >= n reaches the token itself only
        m = -(-n // d_eff)
        groups.append(Group(d_eff, heads, m, -(-(m + num_global) // BLOCK) * BLOCK, mask_to_classes(key_ok, d_eff)))
    groups, T = tuple(groups), max(g.d * g.P for g in groups)
    codes = layout_codes(groups, len(dilation), T, num_global)
    first = first_seen(groups, len(dilation), T, global_pos) if causal else None
    layout = Layout(groups, T, codes, band_block_mask(groups, codes, w, first), first)
    if key is not None:
        with _LAYOUTS_LOCK:
            _LAYOUTS[key] = layout
            while len(_LAYOUTS) > _LAYOUTS_MAX:
                _LAYOUTS.popitem(last=False)
    return layout


def _fill(seq: torch.Tensor, x: torch.Tensor, g: Group, appended: torch.Tensor | None = None) -> torch.Tensor:
    """Write the heads of group g into the (H, T, hd) zeros `seq`: each class's m slots, then `appended` (h, G, hd).
    x: (h, n, hd) those heads' rows. Returns the group's segments as a (h, d, P, hd) view (a copy when the group
    is not every head: it is then written back by index)."""
    H, T, hd = seq.shape
    h, span = len(g.heads), g.d * g.P
    every = h == H  # one dilation for all heads: write in place, no gather or scatter
    seg = seq[:, :span].view(H, g.d, g.P, hd) if every else seq.new_zeros(h, g.d, g.P, hd)
    seg[:, :, :g.m] = to_classes(x, g.d).transpose(0, 1)
    if appended is not None:
        seg[:, :, g.m:g.m + appended.shape[1]] = appended.unsqueeze(1)
    if not every:
        seq[g.heads, :span] = seg.view(h, span, hd)
    return seg


# -- attention -------------------------------------------------------------------------------------------------------
def flex_local(q, k, v, key_ok, w: int, dilation: tuple[int, ...], gk, gv, need_weights: bool,
               weights_dtype=torch.float32, compiled: bool | None = None, layout_key=None,
               global_pos: torch.Tensor | None = None, softcap: float | None = None,
               sinks: torch.Tensor | None = None):
    """Band + global columns of every head, dilation per head, in one FlexAttention call.

    q (scaled), k, v: (H, n, hd);  key_ok: (n,) bool, keys allowed in the band;  gk, gv: (H, G, hd).
    Returns out (H, n, hd) and, if need_weights, band (H, n, 2w + 1), to_global (H, n, G), received (H, n) fp32.
    compiled: run FlexAttention's fused kernel (default: on CUDA). Uncompiled, FlexAttention evaluates the mask
    over every (query, key) pair: right, but quadratic, for tests on small inputs. Compiled on the CPU it gives no
    log-sum-exp, so capture there always runs uncompiled.
    layout_key: a hashable that determines key_ok (e.g. the length and the global positions when there is no
    padding): the layout and block mask are then made once for all layers instead of once per layer.
    global_pos: causal attention (`mask.attends` with causal): (G,) long, the global tokens' positions; band keys
    only at or before the query, a global key only from the positions at or after it. None: not causal.
    softcap: attention-logit soft-capping (a score_mod); sinks: (H,) per-head sink logits (see `logits.py`). With
    sinks and need_weights, a fifth tensor is each row's sink share (H, n); otherwise it is None.
    """
    H, n, hd = q.shape
    G = gk.shape[1]
    compiled = q.is_cuda if compiled is None else compiled
    if compiled and (need_weights or sinks is not None) and not q.is_cuda:  # the CPU compile gives no lse
        compiled = False
    causal = global_pos is not None
    layout = _layout(key_ok, tuple(dilation), G, w, layout_key, global_pos)
    qseq, kseq, vseq = (q.new_zeros(H, layout.T, hd) for _ in range(3))  # (H, T, hd)
    one = len(layout.groups) == 1
    segments = []  # per group: (h, d, P, hd) segments of q and k, for capture
    for g in layout.groups:
        pick = (lambda x: x) if one else (lambda x: x[g.heads])
        segments.append((_fill(qseq, pick(q), g), _fill(kseq, pick(k), g, pick(gk))))
        _fill(vseq, pick(v), g, pick(gv))
    attend = _compiled() if compiled else flex_attention
    want_lse = need_weights or sinks is not None  # the sink's share comes from the log-sum-exp
    aux = AuxRequest(lse=True) if want_lse else None
    score_mod = None if softcap is None else soft_cap_mod(float(softcap), q.device)
    try:
        with _LOCK:
            result = attend(qseq[None], kseq[None], vseq[None], block_mask=layout.block_mask, scale=1.0,
                            return_aux=aux, score_mod=score_mod)
    except TorchDynamoException as e:  # compilation failed: remembered, so "auto" stops choosing this path
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        _FAILED[(q.device.type, hd)] = why
        raise FlexUnavailable(f"FlexAttention could not be compiled for {q.device.type} with head size {hd} "
                              f"({why})") from e
    seq_out, lse = (result[0][0], result[1].lse[0]) if want_lse else (result[0], None)  # (H, T, hd), (H, T)
    share = None
    if sinks is not None:  # the sink joins each row's denominator: rows shrink by its share, lse grows by it
        lse = lse.float()
        share = sink_share(lse, sinks)  # (H, T)
        total = torch.logaddexp(lse, sinks.float().view(-1, 1))  # log(exp(lse) + exp(sink))
        seq_out = seq_out * (lse - total).exp().unsqueeze(-1).to(seq_out.dtype)  # 1 - share, without cancelling
        lse = total

    def classes(x, g):  # (H, T, c) -> (d, h, m, c): group g's class slots
        x = x if one else x[g.heads]
        return x[:, :g.d * g.P].view(x.shape[0], g.d, g.P, -1).transpose(0, 1)[:, :, :g.m]

    if one:
        g = layout.groups[0]
        out = from_classes(classes(seq_out, g), n)
    else:
        out = q.new_empty(H, n, hd)
        for g in layout.groups:
            out[g.heads] = from_classes(classes(seq_out, g), n)
    if not need_weights:
        return out, None, None, None, None
    parts = []
    if causal:  # (n, G): the global keys each position may see
        seen = global_pos.view(1, G) <= torch.arange(n, device=q.device).view(n, 1)
    for g, (qs, ks) in zip(layout.groups, segments):  # weights rebuilt from the log-sum-exp, group by group
        global_ok = to_classes(seen[None].to(torch.uint8), g.d)[:, 0].bool() if causal and G else None  # (d, m, G)
        _, b, t, r, _ = band_core(qs.transpose(0, 1)[:, :, :g.m], ks.transpose(0, 1)[:, :, :g.m], None, g.key_ok, w,
                                   gk if one else gk[g.heads], None, True, weights_dtype=weights_dtype,
                                   lse=classes(lse.unsqueeze(-1), g)[..., 0], causal=causal, global_ok=global_ok,
                                   softcap=softcap)
        s = None if share is None else from_classes(classes(share.unsqueeze(-1), g), n)[..., 0]  # (h, n)
        parts.append((from_classes(b, n), from_classes(t, n), from_classes(r.unsqueeze(-1), n)[..., 0], s))
    if one:
        return (out, *parts[0])
    band = torch.empty(H, n, 2 * w + 1, device=q.device, dtype=weights_dtype)
    tog = torch.empty(H, n, G, device=q.device, dtype=weights_dtype)
    rec = torch.empty(H, n, device=q.device)
    sink = None if share is None else torch.empty(H, n, device=q.device)
    for g, (b, t, r, s) in zip(layout.groups, parts):
        band[g.heads], tog[g.heads], rec[g.heads] = b, t, r
        if sink is not None:
            sink[g.heads] = s
    return out, band, tog, rec, sink
