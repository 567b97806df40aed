"""Plain dense Longformer attention, built straight from the mask predicate. Slow (n x n) and obviously right:
every fast path is tested against it."""
from __future__ import annotations

import math

import torch

from ..config import LayerSpec
from .logits import soft_cap, softmax_with_sink
from .mask import dense_mask


def reference_attention(q, k, v, qg, kg, vg, spec: LayerSpec, global_tokens=(), valid=None, causal: bool = False,
                        scale: float | None = None, softcap: float | None = None, sinks: torch.Tensor | None = None):
    """Dense masked attention for one layer.

    q, k, v:    (H, n, hd) local projections;  qg, kg, vg: (H, n, hd) global projections (all positions; a causal
                language model has none: pass q, k, v again).
    valid:      (n,) bool, False at padding.  causal: only keys at or before the query (see mask.py).
    scale:      query scaling (default 1 / sqrt(hd)).
    softcap:    attention-logit soft-capping;  sinks: (H,) learned sink logits (see `logits.py`).
    Returns out (H, n, hd) and probs (H, n, n) (fp32; rows of padding queries are 0; with sinks, rows sum to 1 minus
    the sink's share).
    """
    H, n, hd = q.shape
    scale = 1.0 / math.sqrt(hd) if scale is None else scale
    mask = dense_mask(spec, n, global_tokens, valid, causal).to(q.device)  # (H, n, n)
    is_global = torch.zeros(n, dtype=torch.bool, device=q.device)
    is_global[list(global_tokens)] = True
    f32 = torch.float32
    scores = torch.where(is_global.view(1, n, 1),
                         qg.to(f32) @ kg.to(f32).transpose(-1, -2),
                         q.to(f32) @ k.to(f32).transpose(-1, -2)) * scale
    scores = soft_cap(scores, softcap).masked_fill(~mask, float("-inf"))
    probs = softmax_with_sink(scores, sinks, head_dim=-3)[0].nan_to_num(0.0)  # fully masked (padding) rows -> 0
    probs = probs.masked_fill(~mask.any(-1, keepdim=True), 0.0)  # with a sink such a row would be the sink's alone
    out = torch.where(is_global.view(1, n, 1), probs @ vg.to(f32), probs @ v.to(f32))
    return out.to(q.dtype), probs


def reference_encoder_forward(encoder, input_ids, specs, global_tokens=(), valid=None):
    """Whole-model plain path: `encoder`'s own weights, every attention layer via `reference_attention`.

    Returns the last hidden state (n, D) and the dense probabilities of each layer, each (H, n, n).
    """
    hidden = encoder.embeddings(input_ids=input_ids.view(1, -1))[0]
    all_probs = []
    for layer, spec in zip(encoder.layers, specs):
        att = layer.attention
        proj = {name: att._heads(getattr(att, name)(hidden))
                for name in ("query", "key", "value", "query_global", "key_global", "value_global")}
        out, probs = reference_attention(proj["query"], proj["key"], proj["value"], proj["query_global"],
                                         proj["key_global"], proj["value_global"], spec, global_tokens, valid)
        context = out.transpose(0, 1).reshape(hidden.shape)
        attn = layer.attention_output(context, hidden)
        hidden = layer.output(layer.intermediate(attn), attn)
        all_probs.append(probs)
    return hidden, all_probs
