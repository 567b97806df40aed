"""The document as text, one piece per token, for the clickable text view (pure: no I/O, no streamlit).

Each piece carries the characters the token covers in the text, with the spaces before it, so the pieces read as
the document itself; special tokens ([CLS], [SEP]) and texts without character offsets fall back to the token
strings. The browser side (lfviz/app/token_text.py) renders them with textContent, never as HTML.

A map over the text (`value_colors`): each token's background says a value, e.g. how much worse a window predicts
it than full attention, or how far its representation moved; the hover says the number.
"""
from __future__ import annotations

import math

MAX_SHOWN = 1500  # tokens sent at once: the rest is reached with the "first token" slider
WORSE, BETTER = (214, 39, 40), (31, 119, 180)  # red: the value says worse; blue: better (signed values only)


def value_scale(values) -> float:
    """The |value| drawn at full colour: the 98th percentile of |v| (one outlier does not wash the rest out)."""
    finite = sorted(abs(v) for v in values if v is not None and math.isfinite(v))
    return finite[min(len(finite) - 1, int(0.98 * len(finite)))] if finite else 1.0


def value_colors(values, scale: float | None = None) -> list[str | None]:
    """A CSS background per value: red for > 0, blue for < 0, opacity |v| / scale (capped at 0.85); None for
    NaN or 0. scale defaults to `value_scale(values)`."""
    scale = value_scale(values) if scale is None else scale
    scale = scale if scale > 0 else 1.0
    out = []
    for v in values:
        if v is None or not math.isfinite(v) or v == 0:
            out.append(None)
            continue
        r, g, b = WORSE if v > 0 else BETTER
        out.append(f"rgba({r}, {g}, {b}, {min(0.85, abs(v) / scale):.3f})")
    return out


def text_pieces(tokens: list[str], offsets: list[tuple[int, int]] | None, text: str | None, start: int = 0,
                stop: int | None = None, global_tokens=(), matches=(), question: str | None = None,
                values=None, value_format: str = "{:+.3f}", value_scale: float | None = None,
                colors: list[str] | None = None) -> list[dict]:
    """[{"p": position, "t": text shown, "g": global, "m": matches the search, "s": special}] for tokens
    [start, stop). "t" includes the whitespace between the previous token and this one. With a question, the
    tokens before the first special token after it index the question's characters (a question/document pair),
    the rest the text's. With `values` (one per token), each piece also has "c": its `value_colors` background
    (scaled over the whole text, not the shown window, or by `value_scale` so that two maps compare) and "v": the
    value as `value_format` writes it. `colors` (one CSS colour per token) replaces the value colours, e.g. one
    hue per category."""
    stop = len(tokens) if stop is None else min(stop, len(tokens))
    glob, hit = set(global_tokens), set(matches)
    sources = [question, text] if question else [text]
    seg, seen_real, prev_end = 0, False, None
    for i in range(0, start):  # which segment the window starts in
        s, e = offsets[i] if offsets else (0, 0)
        if e <= s and seen_real:
            seg, seen_real = min(seg + 1, len(sources) - 1), False
        seen_real |= e > s
    out = []
    for i in range(start, stop):
        if not offsets:  # token strings only: word pieces ("##") join the previous token
            tok = tokens[i]
            special = tok.startswith(("[", "<")) and tok.endswith(("]", ">"))
            joined = tok.startswith("##") and not special
            shown = ("" if joined or not out else " ") + (tok if special else tok.removeprefix("##"))
            out.append({"p": i, "t": shown, "g": i in glob, "m": i in hit, "s": special})
            continue
        s, e = offsets[i]
        special = e <= s
        source = sources[seg]
        if special or source is None:
            shown = (" " if out else "") + (tokens[i] if special else tokens[i].removeprefix("##"))
            if special and seen_real:  # the end of a segment: the next one indexes the next source
                seg, seen_real, prev_end = min(seg + 1, len(sources) - 1), False, None
        else:
            gap = source[prev_end:s] if prev_end is not None and prev_end <= s else (" " if out else "")
            shown, prev_end, seen_real = gap + source[s:e], e, True
        out.append({"p": i, "t": shown, "g": i in glob, "m": i in hit, "s": special})
    if values is not None:
        if len(values) != len(tokens):
            raise ValueError(f"{len(values)} values for {len(tokens)} tokens: give one value per token")
        colors = value_colors(values, value_scale) if colors is None else list(colors)
        for piece in out:
            v = values[piece["p"]]
            piece["c"] = colors[piece["p"]]
            piece["v"] = value_format.format(v) if v is not None and math.isfinite(v) else "n/a"
    return out
