"""Baseline vs variant: how a configuration change moves attention and hidden states, layer by layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .layout import AttentionWeights, band_key_index


def received(weights: AttentionWeights) -> torch.Tensor:
    """(H, n): total attention each key receives, summed over all queries (band + global columns + global rows)."""
    band = weights.band.float()  # (H, n, W+1)
    H, n, width = band.shape
    keys = band_key_index(n, width - 1, weights.dilation, band.device)  # (H, n, W+1)
    inside = (keys >= 0) & (keys < n)
    out = torch.zeros(H, n, device=band.device)
    out.scatter_add_(1, keys.clamp(0, n - 1).reshape(H, -1), (band * inside).reshape(H, -1))
    if weights.global_tokens:
        g = torch.tensor(weights.global_tokens, device=band.device)
        out[:, g] += weights.to_global.float().sum(1)
        out += weights.from_global.float().sum(1)
    return out


def attention_change(base, variant) -> list[float]:
    """Per captured layer: total-variation distance between the baseline's and the variant's distribution of
    received attention (0 = same, 1 = disjoint), averaged over heads. Works across different windows."""
    out = []
    for layer in base.captured_layers:
        if layer not in variant.captured_layers:
            continue
        a, b = received(base.weights(layer)), received(variant.weights(layer))
        a, b = a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)
        out.append(float(0.5 * (a - b).abs().sum(-1).mean()))
    return out


def hidden_change(base_states, variant_states) -> list[float]:
    """Per layer (embeddings first): mean over tokens of 1 - cosine(baseline, variant)."""
    return [float((1 - F.cosine_similarity(a.float(), b.float(), dim=-1)).mean())
            for a, b in zip(base_states, variant_states)]
