"""Configuration as short text, for the CLI, the sidebar and shareable URLs.

window:   "512"  or one per layer "256,256,512"  or "native": the model's own per-layer pattern (a sliding-window
          LLM's, read from its config), which needs the model's native windows to parse
dilation: "1"    or one per layer "1,1,2"   or per layer/head with ';' between layers "1;1;2,2,1,1"
globals:  "0, 5, 9"   (empty: none)
"""
from __future__ import annotations

from .config import AttentionConfig


def _ints(text: str, what: str) -> list[int]:
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise ValueError(f"{what}: {part!r} is not a whole number; write numbers separated by commas") from None
    return out


def parse_window(text: str):
    vals = _ints(str(text), "window")
    if not vals:
        raise ValueError("window is empty: write one even number (e.g. 512) or one per layer (256,256,512)")
    return vals[0] if len(vals) == 1 else vals


def parse_dilation(text: str):
    text = str(text).strip()
    if not text:
        raise ValueError("dilation is empty: write 1 for no gaps, or one number per layer (1,1,2)")
    if ";" in text:
        layers = []
        for part in text.split(";"):
            vals = _ints(part, "dilation")
            if not vals:
                raise ValueError("dilation: an empty layer between ';' - give each layer a number or one per head")
            layers.append(vals[0] if len(vals) == 1 and "," not in part else vals)
        return layers
    vals = _ints(text, "dilation")
    return vals[0] if len(vals) == 1 else vals


def parse_positions(text: str) -> tuple[int, ...]:
    return tuple(_ints(str(text), "global tokens"))


def format_window(window) -> str:
    return ",".join(map(str, window)) if isinstance(window, tuple) else str(window)


def format_dilation(dilation) -> str:
    if not isinstance(dilation, tuple):
        return str(dilation)
    if any(isinstance(d, tuple) for d in dilation):
        return ";".join(",".join(map(str, d)) if isinstance(d, tuple) else str(d) for d in dilation)
    return ",".join(map(str, dilation))


def format_positions(positions, most: int | None = None) -> str:
    """"0, 12, 40"; with `most`, the first `most` and " ..." when there are more."""
    positions = list(positions)
    shown = ", ".join(map(str, positions[:most]))
    return shown + (" ..." if most is not None and len(positions) > most else "")


NATIVE = "native"  # the window field's word for the model's own pattern


def config_from_text(window: str, dilation: str, global_tokens: str, native=None) -> AttentionConfig:
    """AttentionConfig from the three text fields; ValueError naming the field and the fix.
    native: the model's own windows (`runner.native_windows`, one per layer), what the window "native" stands for;
    dilation and global tokens apply on top of it."""
    if str(window).strip().lower() == NATIVE:
        if native is None:
            raise ValueError("window 'native' is the model's own per-layer pattern, which needs the model: load a "
                             "sliding-window LLM, or write the windows (one even number, or one per layer)")
        return AttentionConfig(window=tuple(native), dilation=parse_dilation(dilation),
                               global_tokens=parse_positions(global_tokens), is_native=True)
    return AttentionConfig(window=parse_window(window), dilation=parse_dilation(dilation),
                           global_tokens=parse_positions(global_tokens))


def config_to_text(cfg: AttentionConfig) -> dict[str, str]:
    return {"window": NATIVE if cfg.is_native else format_window(cfg.window), "dilation": format_dilation(cfg.dilation),
            "global": format_positions(cfg.global_tokens)}


def layer_settings_text(windows, dilations, dilated_heads, num_heads: int) -> dict[str, str]:
    """Window and dilation fields from per-layer controls: windows[l] (two-sided), dilations[l] (one int) applied
    to the heads in dilated_heads[l] (the others get 1). Collapses to a single number wherever every layer (or
    every head of a layer) agrees, e.g. {"window": "512", "dilation": "1;1;2,2,1,1"}."""
    if not len(windows) == len(dilations) == len(dilated_heads):
        raise ValueError(f"got {len(windows)} windows, {len(dilations)} dilations and {len(dilated_heads)} head "
                         "sets: give one of each per layer")
    per_layer = []
    for d, heads in zip(dilations, dilated_heads):
        per_head = tuple(int(d) if h in set(heads) else 1 for h in range(num_heads))
        per_layer.append(per_head[0] if len(set(per_head)) == 1 else per_head)
    uniform = all(d == per_layer[0] for d in per_layer) and isinstance(per_layer[0], int)
    window = windows[0] if len(set(windows)) == 1 else tuple(windows)
    return {"window": format_window(window), "dilation": format_dilation(per_layer[0] if uniform else tuple(per_layer))}
