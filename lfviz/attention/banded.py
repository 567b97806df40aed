"""Longformer attention for one layer: the band + global columns from a kernel (blocked or FlexAttention), the
global rows computed apart, the weights in the split layout.

Checked for equality against `reference.reference_attention` (tests/attention/test_banded.py), for both kernels.
Causal attention on the blocked side goes to `causal_band.py` (grouped-query heads kept grouped) where every head
has the same dilation; mixed per-head dilation, and FlexAttention, repeat the key/value heads and use the shared
kernels.
"""
from __future__ import annotations

import functools
import math
import warnings

import torch

from ..config import LayerSpec
from . import flex
from .blocked import blocked_local
from .causal_band import causal_band
from .dense import dense_attention, is_full
from .indexing import from_classes, mask_to_classes, positions, to_classes
from .layout import AttentionWeights
from .logits import soft_cap, softmax_with_sink


IMPLS = ("auto", "blocked", "flex")


class GlobalProjections:
    """The global key and value projections of every position, never made: the G global queries are the only
    ones that use them, so they go through the weights instead. Scores q . (W x + b) = (q W) . x + q . b, and
    output p . (W x + b) = (p . x) W^T + b sum(p): 2 H G n D multiply-adds instead of the 2 n D^2 of projecting
    every position (cheaper while G < head size; ~1/7 of a Longformer layer's linear work).

    hidden: (n, D) the layer's input; key, value: the `key_global` / `value_global` nn.Linear; heads: H."""

    def __init__(self, hidden: torch.Tensor, key, value, heads: int):
        self.hidden, self.key, self.value, self.heads = hidden, key, value, heads

    def _w(self, lin):  # (H, hd, D) fp32 weight, (H, 1, hd) bias or None
        H, D = self.heads, self.hidden.shape[1]
        b = None if lin.bias is None else lin.bias.float().view(H, 1, -1)
        return lin.weight.float().view(H, -1, D), b

    def scores(self, q: torch.Tensor) -> torch.Tensor:
        """q (H, G, hd) fp32 scaled global queries -> (H, G, n) fp32 scores over every position."""
        w, b = self._w(self.key)
        H, G, _ = q.shape
        s = (q @ w).view(H * G, -1) @ self.hidden.float().t()  # (H * G, n)
        s = s.view(H, G, -1)
        return s if b is None else s + (q * b).sum(-1, keepdim=True)

    def output(self, p: torch.Tensor) -> torch.Tensor:
        """p (H, G, n) fp32 global rows' probabilities -> (H, G, hd) fp32 outputs."""
        w, b = self._w(self.value)
        H, G, n = p.shape
        out = (p.reshape(H * G, n) @ self.hidden.float()).view(H, G, -1) @ w.transpose(-1, -2)  # (H, G, hd)
        return out if b is None else out + b * p.sum(-1, keepdim=True)


def resolve_impl(impl: str, device: torch.device, head_dim: int = 64, n: int | None = None,
                 dilation: tuple[int, ...] = (1,)) -> str:
    """"auto": FlexAttention on a CUDA GPU that can compile it for this head size, where every residue class of
    the n tokens fills a block; the blocked kernel elsewhere."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    if impl == "auto":
        fits = n is None or flex.suits(n, dilation)
        return "flex" if fits and flex.available(device, head_dim) else "blocked"
    return impl


def banded_attention(q, k, v, spec: LayerSpec, global_tokens=(), valid=None, qg=None, kg=None, vg=None,
                     need_weights: bool = False, block: int | None = None,
                     weights_dtype: torch.dtype = torch.float32, impl: str = "auto", causal: bool = False,
                     scale: float | None = None, softcap: float | None = None, sinks: torch.Tensor | None = None,
                     received: bool = True):
    """Longformer attention for one layer.

    q, k, v:  (H, n, hd) local projections of every position. Causal: k, v may hold Hkv heads (H a multiple of
              Hkv, grouped-query attention): query head h reads key/value head h // (H / Hkv).
    qg:       (H, G, hd) global query projections of the global tokens only (G ascending positions);
    kg, vg:   (H, n, hd) global key/value projections of every position. All three None when G == 0.
              Or kg a `GlobalProjections` (vg None): the same, applied through the global queries.
    valid:    (n,) bool, False at padding (None: no padding).
    impl:     the band + global columns part: "blocked" (`blocked.py`), "flex" (FlexAttention, `flex.py`)
              or "auto" (flex on a CUDA GPU, blocked elsewhere). The global rows are computed here either way.
              "auto" without weights on a window that covers the text (full attention): `dense.py`.
    causal:   keys only at or before each query (`mask.attends`): a language model's attention. Then
              qg, kg, vg are the same projections as q, k, v (a causal LM has no global ones); kg, vg may hold
              Hkv heads like k, v.
    scale:    query scaling (default 1 / sqrt(hd); some models use another).
    softcap:  attention-logit soft-capping, `softcap * tanh(s / softcap)` of the scaled scores (Gemma 2).
    sinks:    (H,) learned per-head sink logits in every row's softmax denominator (gpt-oss); see `logits.py`.
    Returns out (H, n, hd) and, if need_weights, AttentionWeights in `weights_dtype` (softmax is always fp32),
    whose band is as wide as `spec.for_length(n)`: never wider than the text; with sinks its `sink` holds each
    row's sink share (H, n) and every row sums to 1 minus it.
    received: the weights carry `received` (column sums) computed in the kernel; False leaves it None, for
              `headstats.received` to derive from the band when a view asks (a causal capture of every layer
              then skips a pass over every layer's probabilities).
    """
    H, n, hd = q.shape
    spec = spec.for_length(n)  # a window wider than the text costs what the widest useful one costs
    scale = 1.0 / math.sqrt(hd) if scale is None else scale
    dev = q.device
    chosen = resolve_impl(impl, dev, hd, n, spec.dilation)
    G = len(global_tokens)
    grouped = causal and chosen == "blocked" and len(set(spec.dilation)) == 1  # the causal band kernel
    if k.shape[0] != H and not grouped:  # the shared kernels take one key/value head per query head
        k, v = (x.repeat_interleave(H // x.shape[0], dim=0) for x in (k, v))
    # without padding, the length and the global positions fix the layout: flex makes one block mask for all layers
    layout_key = (n, tuple(global_tokens)) if valid is None else None
    g_idx = positions(tuple(global_tokens), dev)
    is_global = torch.zeros(n, dtype=torch.bool, device=dev).index_fill_(0, g_idx, True)
    padded = valid is not None
    valid = torch.ones(n, dtype=torch.bool, device=dev) if valid is None else valid.to(dev, torch.bool)
    band_ok = valid & ~is_global
    qs = None if grouped else q * scale  # the causal band kernel scales the queries as it regroups them
    gk, gv = k[:, g_idx], v[:, g_idx]  # (H, G, hd): non-global rows see global keys through local projections
    global_ok = None
    if causal and G:  # a sink is seen only from the positions at or after it
        global_ok = g_idx.view(1, G) <= torch.arange(n, device=dev).view(n, 1)  # (n, G)
    sinks = None if sinks is None else sinks.to(device=dev, dtype=torch.float32)
    blocked = functools.partial(blocked_local, qs, k, v, band_ok, spec, gk, gv, need_weights, weights_dtype, block,
                                causal, global_ok, softcap, sinks)
    if impl == "auto" and not need_weights and is_full(spec.one_sided, spec.dilation, n):
        # full attention (a window covering the text): the global columns are every key's local projection anyway
        if k.shape[0] != H:
            k, v = (x.repeat_interleave(H // x.shape[0], dim=0) for x in (k, v))
        out = dense_attention(q, k, v, None if not padded else valid, causal, scale, softcap, sinks)
    elif grouped:
        out, band, tog, rec, sink = _causal(q, k, v, band_ok, spec, gk, gv, need_weights, weights_dtype, global_ok,
                                            softcap, sinks, received, block, scale)
    elif chosen == "flex":
        try:
            out, band, tog, rec, sink = flex.flex_local(qs, k, v, band_ok, spec.one_sided, spec.dilation, gk, gv,
                                                        need_weights, weights_dtype, layout_key=layout_key,
                                                        global_pos=g_idx if causal else None, softcap=softcap,
                                                        sinks=sinks)
        except flex.FlexUnavailable as e:
            if impl != "auto":
                raise
            warnings.warn(f"{e}; using the blocked kernel instead", stacklevel=2)
            out, band, tog, rec, sink = blocked()
    else:
        out, band, tog, rec, sink = blocked()

    from_global = None
    if G:
        projected = isinstance(kg, GlobalProjections)
        s = kg.scores((qg * scale).float()) if projected else _grouped((qg * scale).float(), kg.float().mT)
        seen = valid.view(1, n)
        if causal:  # a global query sees every token at or before it
            seen = seen & (torch.arange(n, device=dev).view(1, n) <= g_idx.view(G, 1))
        s = soft_cap(s, softcap).masked_fill(~seen.view(1, -1, n), float("-inf"))
        from_global, global_share = softmax_with_sink(s, sinks, head_dim=-3)  # (H, G, n), (H, G) or None
        if padded:  # a global position on padding attends nothing, like any padding query
            from_global = from_global.masked_fill(~valid[g_idx].view(1, G, 1), 0.0)
        out[:, g_idx] = (kg.output(from_global) if projected else _grouped(from_global.to(vg.dtype), vg)).to(out.dtype)
    if padded:  # a padding query attends nothing (mask.py): its output is 0, as in HF, allenai and the reference
        out.masked_fill_(~valid.view(1, n, 1), 0.0)
    if not need_weights:
        return out, None
    # rows that hold no band / to_global weights (global, padding); band and tog are fresh kernel tensors, zeroed in
    # place, those rows alone: a masked pass over the whole band cost as much as writing it
    silent = g_idx if not padded else (is_global | ~valid).nonzero()[:, 0]
    if len(silent):
        band.index_fill_(1, silent, 0.0)
        tog.index_fill_(1, silent, 0.0)
    if sink is not None:  # each query's sink share: the band rows from the kernel, the global rows from above
        sink.masked_fill_(~valid.view(1, n), 0.0)
        if G:
            sink[:, g_idx] = global_share.masked_fill(~valid[g_idx].view(1, G), 0.0)
    if G and rec is not None:  # what the global tokens receive (columns) and give (their rows), on top of the band
        rec[:, g_idx] += tog.float().sum(1)
        rec += from_global.sum(1)
    from_global = band.new_zeros(H, 0, n) if from_global is None else from_global.to(weights_dtype)
    rest = (tog, from_global, tuple(spec.dilation), tuple(global_tokens), rec)
    if not causal:
        return out, AttentionWeights(band, *rest, sink=sink)
    if band.shape[-1] == spec.one_sided + 1:  # the blocked kernel wrote the past half alone
        return out, AttentionWeights(band, *rest, sink=sink, causal=True)
    return out, AttentionWeights.causal_band(band, *rest, sink=sink)  # causal: the past half is kept


def _grouped(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (H, X, Y) @ b (Hkv, Y, Z) -> (H, X, Z), query head h against b's head h // (H / Hkv), without repeating b."""
    H, X, Y = a.shape
    Hkv = b.shape[0]
    return (a.reshape(Hkv, H // Hkv * X, Y) @ b).view(H, X, -1)


def _causal(q, k, v, band_ok, spec: LayerSpec, gk, gv, need_weights, weights_dtype, global_ok, softcap, sinks,
            received, block, scale):
    """`causal_band` for (H, n, hd) unscaled queries and (Hkv, n, hd) keys/values of one dilation d, each residue class mod
    d run as an undilated band. Returns what `blocked_local` returns (band: the past half; rec None unless
    `received`)."""
    n = q.shape[1]
    d = min(spec.dilation[0], n)  # d >= n reaches no key but the token itself: the same as d = n
    gok = None if global_ok is None else to_classes(global_ok[None].to(torch.uint8), d)[:, 0].bool()  # (d, m, G)
    out, band, tog, rec, sink = causal_band(to_classes(q, d), to_classes(k, d), to_classes(v, d),
                                            mask_to_classes(band_ok, d), spec.one_sided, gk, gv, need_weights,
                                            weights_dtype, gok, softcap, sinks, received, block, scale)
    if not need_weights:
        return from_classes(out, n), None, None, None, None
    per_row = lambda x: None if x is None else from_classes(x.unsqueeze(-1), n)[..., 0]  # (d, h, m) -> (h, n)
    return from_classes(out, n), from_classes(band, n), from_classes(tog, n), per_row(rec), per_row(sink)
