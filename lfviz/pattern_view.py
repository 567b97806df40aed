"""What the Pattern page shows, as plain numbers: attention patterns binned into picture cells (optionally zoomed
to a span of positions), per-layer costs as a table, and receptive-field curves for a few configurations.

Built on `lfviz.patterns` (the mask predicate's pairs, never an n x n matrix); no streamlit, no figures.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import LayerSpec
from .patterns import density, layer_costs, reach


def cell_edges(start: int, stop: int, max_cells: int) -> np.ndarray:
    """(k + 1,) token boundaries of at most `max_cells` cells covering positions [start, stop).

    Every cell holds the same whole number of tokens s = ceil((stop - start) / max_cells), except the last one,
    which may stop early at `stop`; s = 1 (one cell per token) when the span fits.
    """
    m = stop - start
    s = -(-m // max_cells)
    k = -(-m // s)
    return start + np.minimum(np.arange(k + 1) * s, m)


def _check_span(n: int, start: int, stop: int | None) -> int:
    stop = n if stop is None else stop
    if not 0 <= start < stop <= n:
        raise ValueError(f"zoom span [{start}, {stop}) must lie inside the document's 0..{n} and hold a token")
    return stop


def pattern_cells(rows: np.ndarray, cols: np.ndarray, n: int, start: int = 0, stop: int | None = None,
                  max_cells: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Share of attended (query, key) pairs per cell of the picture of positions [start, stop) on both axes.

    rows, cols: attended pairs (e.g. `patterns.longformer_pairs`). Returns z (k, k), z[i, j] = attended pairs /
    all pairs in query cell i x key cell j (exactly the mask when cells are single tokens), and edges (k + 1,)
    from `cell_edges`.
    """
    stop = _check_span(n, start, stop)
    keep = (rows >= start) & (rows < stop) & (cols >= start) & (cols < stop)
    edges = cell_edges(start, stop, max_cells)
    k, s = len(edges) - 1, int(edges[1] - edges[0])
    # k * s tokens split into k cells gives `density` whole cells of s tokens; the last may run past `stop`
    z = density(rows[keep] - start, cols[keep] - start, k * s, k)  # (k, k), pairs / s^2
    sizes = np.diff(edges)
    return z * (s * s) / np.outer(sizes, sizes), edges


def full_cells(n: int, start: int = 0, stop: int | None = None, max_cells: int = 256):
    """`pattern_cells` of full attention (every pair attended), without listing n^2 pairs."""
    edges = cell_edges(start, _check_span(n, start, stop), max_cells)
    return np.ones((len(edges) - 1,) * 2), edges


def _dilation_text(spec: LayerSpec) -> str:
    return str(spec.dilation[0]) if len(set(spec.dilation)) == 1 else ",".join(map(str, spec.dilation))


def costs_frame(specs: tuple[LayerSpec, ...], n: int, num_heads: int, global_tokens=(), block: int = 64,
                num_random: int = 3) -> pd.DataFrame:
    """One row per (layer, pattern): attended pairs per head, their share of n^2, and the fp32 attention scores
    all heads of the layer store (MiB). BigBird rows are missing when n is below its minimum length."""
    rows = []
    for layer, spec in enumerate(specs):
        for c in layer_costs(spec, n, num_heads, global_tokens, block, num_random):
            rows.append({"layer": layer, "window": spec.window, "dilation": _dilation_text(spec), "pattern": c.name,
                         "pairs per head": c.pairs, "share of n²": round(c.share, 5),
                         "score memory (MiB)": round(c.score_bytes / 2**20, 3)})
    return pd.DataFrame(rows)


def reach_curves(specs: tuple[LayerSpec, ...], n: int, global_tokens=(), source: int | None = None
                 ) -> dict[str, list[tuple[int, int]]]:
    """[(lowest, highest) position reached] after 0, 1, ..., L layers for the current configuration, the same
    without global tokens (only when it has some), and full attention. Entry 0 is the source alone."""
    source = n // 2 if source is None else source
    full = tuple(LayerSpec(window=2 * n, dilation=(1,)) for _ in specs)  # a window covering every key
    configs = {"current configuration": (specs, tuple(global_tokens))}
    if global_tokens:
        configs["without global tokens"] = (specs, ())
    configs["full attention"] = (full, ())
    return {name: [(source, source)] + reach(s, n, g, source) for name, (s, g) in configs.items()}


def layers_to_cover(spans: list[tuple[int, int]], n: int) -> int | None:
    """First layer after which the span covers every position 0..n-1 (None if it never does)."""
    return next((x for x, (lo, hi) in enumerate(spans) if lo == 0 and hi == n - 1), None)
