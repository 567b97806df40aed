"""Plain dense Longformer attention, built straight from the mask predicate. Slow (n x n) and obviously right:
every fast path is tested against it."""
from __future__ import annotations

import math

import torch

from .config import LayerSpec
from .mask import dense_mask


def reference_attention(q, k, v, qg, kg, vg, spec: LayerSpec, global_tokens=(), valid=None):
    """Dense masked attention for one layer.

    q, k, v:    (H, n, hd) local projections;  qg, kg, vg: (H, n, hd) global projections (all positions).
    valid:      (n,) bool, False at padding.
    Returns out (H, n, hd) and probs (H, n, n) (fp32; rows of padding queries are 0).
    """
    H, n, hd = q.shape
    scale = 1.0 / math.sqrt(hd)
    mask = dense_mask(spec, n, global_tokens, valid).to(q.device)  # (H, n, n)
    is_global = torch.zeros(n, dtype=torch.bool, device=q.device)
    is_global[list(global_tokens)] = True
    f32 = torch.float32
    scores = torch.where(is_global.view(1, n, 1),
                         qg.to(f32) @ kg.to(f32).transpose(-1, -2),
                         q.to(f32) @ k.to(f32).transpose(-1, -2)) * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # fully masked (padding) rows -> 0
    out = torch.where(is_global.view(1, n, 1), probs @ vg.to(f32), probs @ v.to(f32))
    return out.to(q.dtype), probs
