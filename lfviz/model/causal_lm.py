"""Hugging Face causal language models under lfviz's causal Longformer pattern, with capture.

Llama, Mistral, Qwen2, Gemma and the other models whose attention goes through `ALL_ATTENTION_FUNCTIONS` call
whatever function is registered under their `attn_implementation`. lfviz registers `longformer_attention` there
as "lfviz_longformer": it receives q, k, v after RoPE (k and v with the model's key/value head count) and runs
`banded_attention(..., causal=True)`: on the CPU the causal band kernel (`attention/causal_band.py`), never an
n x n matrix, grouped-query heads kept grouped (each key/value head read once for its query heads); the captures
carry no `received` sums (`headstats.received` derives them from the band when a view asks). Window, dilation and
global (sink) tokens are not module state: a run sets them for its own thread with `longformer_pattern(...)`, so
one loaded model serves concurrent runs.

Causal semantics (mask.py): a token sees itself and the `window // 2` previous band keys (every d-th one), plus
every global token at or before it; a global token sees every token at or before it.

What a family's attention module passes besides q, k, v is honoured exactly as its eager path does
(`attention/logits.py`): `softcap` (Gemma 2: `c * tanh(s / c)` before the mask) and `s_aux` (gpt-oss: learned
per-head sink logits in every row's denominator; the capture keeps each query's sink share). `sliding_window` is
ignored on purpose: the window comes from the pattern (the native one reads it from the config, `families.py`).

    model = AutoModelForCausalLM.from_pretrained(..., attn_implementation=ATTENTION)  # or set_attn_implementation
    with longformer_pattern(specs, global_tokens=(0, 1, 2, 3), capture=session):
        logits = model(input_ids).logits
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from transformers import AttentionInterface

from ..attention import sparse
from ..attention.banded import banded_attention
from ..config import LayerSpec
from .capture import CaptureSession

ATTENTION = "lfviz_longformer"  # the attn_implementation name to load or switch a model to
_local = threading.local()


@dataclass(frozen=True)
class CausalPattern:
    specs: tuple[LayerSpec, ...]  # one per layer, dilation one per *query* head
    global_tokens: tuple[int, ...]  # ascending
    session: CaptureSession | None  # which layers to capture, in which dtype, kept where


@contextmanager
def longformer_pattern(specs, global_tokens=(), capture: CaptureSession | None = None) -> Iterator[CausalPattern]:
    """The pattern every `longformer_attention` call of this thread uses until the block ends."""
    pattern = CausalPattern(tuple(specs), tuple(sorted(global_tokens)), capture)
    previous = getattr(_local, "pattern", None)
    _local.pattern = pattern
    try:
        yield pattern
    finally:
        _local.pattern = previous


@contextmanager
def query_key_probe(probe) -> Iterator[None]:
    """Until the block ends, every `longformer_attention` call of this thread also hands its layer's queries and
    keys to `probe(layer, q, k, scale, softcap=..., sinks=...)`: q (H, n, hd), k (H, n, hd) after RoPE, one key head
    per query head; softcap (float or None) and sinks ((H,) or None) as the model's attention applies them."""
    previous = getattr(_local, "probe", None)
    _local.probe = probe
    try:
        yield
    finally:
        _local.probe = previous


def longformer_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0, **kwargs):
    """An `AttentionInterface` function: query (1, H, n, hd), key/value (1, Hkv, n, hd) after RoPE. Returns the
    output as HF expects it, (1, n, H, hd), and no dense weights (captures go to the run's CaptureSession in the
    split layout instead). `attention_mask` is unused: one unpadded sequence, causality is in the pattern."""
    pattern = getattr(_local, "pattern", None)
    if pattern is None:
        raise RuntimeError(f"attn_implementation {ATTENTION!r} needs a pattern: run the model inside "
                           "lfviz.model.causal_lm.longformer_pattern(specs, global_tokens)")
    B, H, n, hd = query.shape
    if B != 1:
        raise ValueError(f"lfviz runs one sequence at a time, got a batch of {B}")
    if dropout:
        raise ValueError("attention dropout is not supported: put the model in eval mode")
    layer = module.layer_idx
    q = query[0]
    k, v = key[0], value[0]  # (Hkv, n, hd): query head h reads key/value head h // (H / Hkv)
    probe = getattr(_local, "probe", None)
    softcap, sinks = kwargs.get("softcap"), kwargs.get("s_aux")
    each = lambda x: x.repeat_interleave(H // x.shape[0], dim=0)  # (H, n, hd): one key/value head per query head
    if probe is not None:
        probe(layer, q, each(k), scaling if scaling is not None else hd ** -0.5, softcap=softcap, sinks=sinks)
    if sparse.active() is not None:  # another pattern (BigBird, LSH) on the same weights, keys up to the query
        if softcap is not None or sinks is not None:
            raise ValueError("BigBird and LSH patterns do not implement attention-logit softcapping or learned sinks: "
                             "compare them on a model without them (Llama, Mistral, Qwen)")
        out = sparse.run_active(layer, q, each(k), each(v), scaling, causal=True)
        return out.transpose(0, 1)[None].to(query.dtype), None
    g = pattern.global_tokens
    session = pattern.session
    want = session is not None and session.wants(layer)
    out, weights = banded_attention(q, k, v, pattern.specs[layer], g, None, q[:, list(g)] if g else None,
                                    k if g else None, v if g else None, need_weights=want, causal=True,
                                    scale=scaling, weights_dtype=session.dtype if want else torch.float32,
                                    softcap=softcap, sinks=sinks, received=False)
    if want:
        session.capture.layers[layer] = weights.to(device=session.device, dtype=session.dtype)
    return out.transpose(0, 1)[None].to(query.dtype), None


AttentionInterface.register(ATTENTION, longformer_attention)
