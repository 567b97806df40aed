"""The document as text, one piece per token, for the clickable text view (pure: no I/O, no streamlit).

Each piece carries the characters the token covers in the text, with the spaces before it, so the pieces read as
the document itself; special tokens ([CLS], [SEP]) and texts without character offsets fall back to the token
strings. The browser side (lfviz/app/token_text.py) renders them with textContent, never as HTML.
"""
from __future__ import annotations

MAX_SHOWN = 1500  # tokens sent at once: the rest is reached with the "first token" slider


def text_pieces(tokens: list[str], offsets: list[tuple[int, int]] | None, text: str | None, start: int = 0,
                stop: int | None = None, global_tokens=(), matches=(), question: str | None = None) -> list[dict]:
    """[{"p": position, "t": text shown, "g": global, "m": matches the search, "s": special}] for tokens
    [start, stop). "t" includes the whitespace between the previous token and this one. With a question, the
    tokens before the first special token after it index the question's characters (a question/document pair),
    the rest the text's."""
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
    return out
