"""Sink mass: the share of each query's attention that a learned sink logit takes (gpt-oss). The sink joins each
row's softmax denominator and is then dropped, so a captured row of weights sums to 1 minus its sink mass.
Models without learned sinks have none (`AttentionWeights.sink is None`)."""
from __future__ import annotations

import numpy as np


def has_sinks(capture) -> bool:
    """Whether any captured layer carries a sink mass (a model with learned sinks)."""
    return any(capture.weights(l).sink is not None for l in capture.captured_layers)


def mean_per_head(capture) -> tuple[list[int], np.ndarray]:
    """(layers, (L, H) float32): each captured layer's sink mass per head, averaged over the queries. Layers
    without a sink mass are left out (layers: the ones kept, in order)."""
    layers = [l for l in capture.captured_layers if capture.weights(l).sink is not None]
    rows = [capture.weights(l).sink.float().mean(-1).cpu().numpy() for l in layers]  # each (H,)
    return layers, np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)


def per_query(capture, layer: int, head: int) -> np.ndarray | None:
    """(n,) float32: each query's sink mass at one layer and head, or None when the layer has none."""
    sink = capture.weights(layer).sink
    return None if sink is None else sink[head].float().cpu().numpy()
