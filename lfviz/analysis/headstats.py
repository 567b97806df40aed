"""Per-head statistics straight from the split layout (band + global columns + global rows), in O(n * W) per
head: no dense (n, n) matrix is ever built.

Per query row i with weights p_ij over keys j and mass m_i = sum_j p_ij (rows with m_i = 0, e.g. padding,
are skipped), averaged over rows:
- mean distance:  sum_j p_ij |i - j| / m_i                      (tokens)
- entropy:        -sum_j (p_ij / m_i) log(p_ij / m_i)            (nats)
- global share:   sum_{j global} p_ij / m_i                      (0..1)
Captures are fp16; everything here converts one head at a time to float32, on the device the capture lives on
(a capture kept on the GPU is reduced there; only the per-head results move to the CPU).
"""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from ..attention.indexing import positions
from ..attention.layout import AttentionWeights, weights_to_dense
from ..model.capture import Capture

METRICS = {  # key -> label shown in the app
    "mean_distance": "mean attention distance (tokens)",
    "entropy": "entropy of a row (nats)",
    "global_share": "share of weight on global tokens",
}
_EMPTY_ROW = 1e-6  # a row with less mass than this is padding or empty, not a distribution


def received(weights: AttentionWeights) -> torch.Tensor:
    """(H, n): total attention each key receives, summed over all queries (band + global columns + global rows).

    Band column c of query i is key i + (c - W/2) * d, so key j collects band[j - (c - W/2) * d, c]. With W/2 * d
    zero rows padded at both ends that is one strided (skewed) view summed over its last axis, no index tensor.
    Memoised on the weights object (`weights.received`), which the kernel fills when it captures.
    """
    if weights.received is not None:  # the kernel summed it while computing (or an earlier call did)
        return weights.received
    band = weights.band
    H, n, width = band.shape
    w = (width - 1) // 2
    out = torch.zeros(H, n, device=band.device)  # float32
    dil = torch.tensor(weights.dilation)
    for d in dil.unique().tolist():
        heads = (dil == d).nonzero().flatten().to(band.device)
        padded = F.pad(band[heads], (0, 0, w * d, w * d))  # (h, n + 2wd, W+1): padded[r] = band[r - wd]
        # key j, flipped column c' = W - c:  padded[j + c' * d, W - c'] at offset j*(W+1) + c'*(d*(W+1) - 1) + W
        skew = padded.as_strided((len(heads), n, width), (padded.stride(0), width, d * width - 1),
                                 padded.storage_offset() + width - 1)
        out[heads] = skew.sum(-1, dtype=torch.float32)
    if weights.global_tokens:
        g = positions(tuple(weights.global_tokens), band.device)
        out[:, g] += weights.to_global.float().sum(1)
        out += weights.from_global.float().sum(1)
    weights.received = out
    return out


def _row_terms(weights: AttentionWeights, h: int) -> tuple[torch.Tensor, ...]:
    """Per query row of head h: mass, sum p|i-j|, sum p log p, weight on global keys; each (n,) float32."""
    band = weights.heads(slice(h, h + 1)).band[0].float()  # (n, W + 1)
    n, width = band.shape
    dev = band.device
    w, d = (width - 1) // 2, int(weights.dilation[h])
    i = torch.arange(n, dtype=torch.float32, device=dev)
    offset = ((torch.arange(width, device=dev) - w).abs() * d).float()  # (W + 1,) |i - j| of each band column
    mass = band.sum(-1)
    dist = band @ offset
    xlogx = torch.special.xlogy(band, band).sum(-1)
    on_global = torch.zeros(n, device=dev)
    if weights.global_tokens:
        g = positions(tuple(weights.global_tokens), dev)
        to_g = weights.to_global[h].float()  # (n, G); global rows are 0
        from_g = weights.from_global[h].float()  # (G, n)
        gap = (i.view(n, 1) - g.view(1, -1).float()).abs()  # (n, G) = |i - g|
        mass += to_g.sum(-1)
        dist += (to_g * gap).sum(-1)
        xlogx += torch.special.xlogy(to_g, to_g).sum(-1)
        on_global += to_g.sum(-1)
        # a global token's row lives only in from_global (its band and to_global rows are 0)
        mass[g] = from_g.sum(-1)
        dist[g] = (from_g * gap.T).sum(-1)
        xlogx[g] = torch.special.xlogy(from_g, from_g).sum(-1)
        on_global[g] = from_g[:, g].sum(-1)
    return mass, dist, xlogx, on_global


def row_stats(weights: AttentionWeights, h: int) -> dict[str, torch.Tensor]:
    """Per query row of head h: the three METRICS, each (n,) float32 on the capture's device; NaN on empty rows."""
    mass, dist, xlogx, on_global = _row_terms(weights, h)
    ok = mass > _EMPTY_ROW
    m = torch.where(ok, mass, torch.ones_like(mass))
    nan = torch.full_like(mass, float("nan"))
    return {"mean_distance": torch.where(ok, dist / m, nan),
            "entropy": torch.where(ok, m.log() - xlogx / m, nan),
            "global_share": torch.where(ok, on_global / m, nan)}


def head_stats(weights: AttentionWeights) -> dict[str, torch.Tensor]:
    """The three METRICS of every head of one layer, each (H,): the mean over non-empty rows."""
    H = weights.stored.shape[0]
    out = {k: torch.zeros(H) for k in METRICS}
    for h in range(H):
        for k, v in row_stats(weights, h).items():
            out[k][h] = float(v.nanmean())
    return out


def stats_table(capture: Capture) -> pd.DataFrame:
    """One row per (captured layer, head): layer, head, window, dilation, and the METRICS."""
    rows = []
    for layer in capture.captured_layers:
        w = capture.weights(layer)
        stats = head_stats(w)
        for h in range(w.stored.shape[0]):
            rows.append({"layer": layer, "head": h, "window": w.window, "dilation": int(w.dilation[h]),
                         **{k: round(float(stats[k][h]), 5) for k in METRICS}})
    return pd.DataFrame(rows, columns=["layer", "head", "window", "dilation", *METRICS])


def dense_span(weights: AttentionWeights, head: int, rows: slice, cols: slice) -> torch.Tensor:
    """(r, c) float32 dense weights of one head for a span of queries (rows) and keys (cols), on the CPU;
    `weights_to_dense(weights, rows, cols)[head]`, computed for that head alone where the capture lives."""
    return weights_to_dense(weights.heads(slice(head, head + 1)), rows, cols)[0].float().cpu()


def global_summary(weights: AttentionWeights, head: int, tokens: list[str], top: int = 5) -> pd.DataFrame:
    """One row per global token of one head: position, token, the weight it receives from the other tokens
    (sum and mean over non-global queries), and the keys its own row weights most."""
    G = len(weights.global_tokens)
    n = weights.stored.shape[1]
    to_g = weights.to_global[head].float()  # (n, G)
    from_g = weights.from_global[head].float()  # (G, n)
    local = max(n - G, 1)
    rows = []
    for k, g in enumerate(weights.global_tokens):
        vals, idx = from_g[k].topk(min(top, n))
        rows.append({"position": g, "token": tokens[g], "received (sum)": round(float(to_g[:, k].sum()), 4),
                     "received (mean per token)": round(float(to_g[:, k].sum()) / local, 5),
                     "attends most to": ", ".join(f"{j} {tokens[j]} ({v:.3f})"
                                                  for v, j in zip(vals.tolist(), idx.tolist()))})
    return pd.DataFrame(rows)
