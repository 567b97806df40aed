"""Layers seen as layers: what each layer of a configuration attends (sliding or full, its window, how far back
it reaches) next to the model's own (native) pattern, and the edits a lecturer makes per layer (make a full layer
slide, widen every sliding layer, back to native).

Windows are lfviz's: two-sided and even; a causal layer with window W sees itself and the W/2 tokens before it
(Hugging Face's sliding window S = W/2 + 1 keys). A layer is "full" when its window reaches every token the text
has (`LayerSpec.for_length`), so the same window can be sliding on a long text and full on a short one.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import AttentionConfig


@dataclass(frozen=True)
class LayerRow:
    layer: int
    kind: str  # "full" or "sliding" under the configuration, on this text
    window: int  # two-sided, as configured (before cutting to the text)
    keys: int  # keys a query sees at most (itself included; causal: itself and those before it), global tokens apart
    span: int  # how far back (causal) or to each side a query reaches, in tokens: dilation x window / 2
    native_kind: str  # what the model does in this layer on this text ("full" / "sliding")
    changed: bool  # the configuration differs from the native pattern in this layer


def _kind(window: int, dilation: int, n: int) -> str:
    return "full" if dilation * (window // 2) >= n - 1 else "sliding"


def layer_rows(config: AttentionConfig, native_windows, num_layers: int, num_heads: int, n: int,
               causal: bool = True) -> list[LayerRow]:
    """One row per layer for an n-token text; `native_windows` are the model's own (`runner.native_windows`)."""
    specs = config.resolve(num_layers, num_heads)
    rows = []
    for l, spec in enumerate(specs):
        d = min(spec.dilation)
        reach = min(d * spec.one_sided, n - 1)
        keys = min(spec.one_sided, reach // d) + 1 if causal else 2 * min(spec.one_sided, reach // d) + 1
        native = native_windows[l]
        rows.append(LayerRow(l, _kind(spec.window, d, n), spec.window, keys, reach, _kind(native, 1, n),
                             spec.window != native or any(x != 1 for x in spec.dilation)))
    return rows


def sliding_window(native_windows) -> int | None:
    """The model's own sliding window (lfviz convention), or None when no layer slides natively."""
    full = max(native_windows)
    sliding = [w for w in native_windows if w < full]
    return min(sliding) if sliding else None


def full_layers(native_windows) -> list[int]:
    """Layers the model itself runs with full attention, when some others slide (Gemma 3: 5, 11, 17)."""
    if sliding_window(native_windows) is None:
        return []
    full = max(native_windows)
    return [l for l, w in enumerate(native_windows) if w == full]


def set_windows(windows, layers, window: int) -> tuple[int, ...]:
    """`windows` with `layers` set to `window` (make full layers slide, or sliding ones full)."""
    chosen = set(layers)
    return tuple(window if l in chosen else w for l, w in enumerate(windows))


def widen_sliding(windows, full_window: int, window: int) -> tuple[int, ...]:
    """Every layer that slides now (window below `full_window`, which reaches every position) gets `window`; full
    layers stay full."""
    return tuple(window if w < full_window else w for w in windows)
