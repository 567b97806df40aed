"""Baseline vs variant: how a configuration change moves attention and hidden states, layer by layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .layout import AttentionWeights


def received(weights: AttentionWeights) -> torch.Tensor:
    """(H, n): total attention each key receives, summed over all queries (band + global columns + global rows).

    Band column c of query i is key i + (c - W/2) * d, so key j collects band[j - (c - W/2) * d, c]. With W/2 * d
    zero rows padded at both ends that is one strided (skewed) view summed over its last axis, no index tensor.
    Memoised on the weights object: a cached baseline is summed once.
    """
    cached = getattr(weights, "_received", None)
    if cached is not None:
        return cached
    band = weights.band
    H, n, width = band.shape
    w = (width - 1) // 2
    out = torch.zeros(H, n, device=band.device)
    dil = torch.tensor(weights.dilation)
    for d in dil.unique().tolist():
        heads = (dil == d).nonzero().flatten().to(band.device)
        padded = F.pad(band[heads], (0, 0, w * d, w * d))  # (h, n + 2wd, W+1): padded[r] = band[r - wd]
        # key j, flipped column c' = W - c:  padded[j + c' * d, W - c'] at offset j*(W+1) + c'*(d*(W+1) - 1) + W
        skew = padded.as_strided((len(heads), n, width), (padded.stride(0), width, d * width - 1),
                                 padded.storage_offset() + width - 1)
        out[heads] = skew.sum(-1, dtype=torch.float32)
    if weights.global_tokens:
        g = torch.tensor(weights.global_tokens, device=band.device)
        out[:, g] += weights.to_global.float().sum(1)
        out += weights.from_global.float().sum(1)
    weights._received = out
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
