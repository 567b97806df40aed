"""The document as text, one piece per token, for the clickable text view (pure: no I/O, no streamlit).

Each piece carries the characters the token covers in the text, with the spaces before it, so the pieces read as
the document itself; special tokens ([CLS], [SEP]) and texts without character offsets fall back to the token
strings. The browser side (lfviz/app/token_text.py) renders them with textContent, never as HTML.

With a question, the model reads question tokens that are not characters of the document: `token_parts` says, for
both model kinds, which tokens are the question's (and where in the question string), which the document's and
which are special, so the views show the question on its own line and the document under it.

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


def _special(token: str) -> bool:
    """[CLS], [SEP], <s>, ...: a token that stands for no character."""
    return token.startswith(("[", "<")) and token.endswith(("]", ">")) and len(token) > 2


def _align(tokens: list[str], question: str) -> list[tuple[int, int]]:
    """Each question token's (start, end) in `question`, found in order (case-insensitive, "##" and the spaces a
    byte-level token carries removed); (0, 0) where its text is not found (an accent the tokenizer stripped, a
    separator such as the causal runner's blank line)."""
    low = question.lower() if len(question.lower()) == len(question) else question  # lower() may change lengths
    out, cursor = [], 0
    for tok in tokens:
        needle = tok.removeprefix("##").strip().lower()
        at = low.find(needle, cursor) if needle else -1
        if at < 0:
            out.append((0, 0))
            continue
        out.append((at, at + len(needle)))
        cursor = at + len(needle)
    return out


def token_parts(tokens: list[str], offsets: list[tuple[int, int]] | None, question: str | None = None
                ) -> list[tuple[str, int, int]] | None:
    """Where each token's characters lie: ("text", s, e) = text[s:e]; ("question", s, e) = question[s:e], or
    (s == e) a question token to show by its string; ("special", 0, 0) = no characters ([CLS], [SEP]).
    None without offsets.

    The runners' offsets index the document only (question tokens and special tokens: (0, 0)). With a question,
    the question tokens are the non-special ones before the document: before the first special token that follows
    them (an encoder's [CLS] question [SEP] document [SEP]), or, with no such separator (a causal LM reads
    "question\n\ndocument" as one text), before the first token with characters of the document. Question tokens
    that still carry offsets (runs saved before offsets indexed the document only) index the question."""
    if not offsets:
        return None
    n = len(tokens)
    real = [e > s for s, e in offsets]
    special = [not real[i] and _special(tokens[i]) for i in range(n)]
    first_doc = 0
    if question:
        asked_any = [False] * n  # a non-special token before position i
        for i in range(1, n):
            asked_any[i] = asked_any[i - 1] or not special[i - 1]
        sep = next((i for i in range(n) if special[i] and asked_any[i]), None)
        first_doc = sep + 1 if sep is not None else next((i for i in range(n) if real[i]), n)
    asked = [i for i in range(first_doc) if not special[i]]
    spans = dict(zip(asked, _align([tokens[i] for i in asked], question or "")))
    parts = []
    for i, (s, e) in enumerate(offsets):
        if i in spans:
            parts.append(("question", s, e) if real[i] else ("question", *spans[i]))
        elif real[i]:
            parts.append(("text", s, e))
        else:
            parts.append(("special", 0, 0))
    return parts


def text_pieces(tokens: list[str], offsets: list[tuple[int, int]] | None, text: str | None, start: int = 0,
                stop: int | None = None, global_tokens=(), matches=(), question: str | None = None,
                values=None, value_format: str = "{:+.3f}", value_scale: float | None = None,
                colors: list[str] | None = None) -> list[dict]:
    """[{"p": position, "t": text shown, "g": global, "m": matches the search, "s": special}] for tokens
    [start, stop). "t" includes the whitespace between the previous token and this one. With a question
    (`token_parts`), its tokens also have "q": True and show the question's characters; the first shown has "h":
    a heading ("Question: ") to show before it, and the document starts on the next line. With `values` (one per
    token), each piece also has "c": its `value_colors` background (scaled over the whole text, not the shown
    window, or by `value_scale` so that two maps compare) and "v": the value as `value_format` writes it.
    `colors` (one CSS colour per token) replaces the value colours, e.g. one hue per category."""
    stop = len(tokens) if stop is None else min(stop, len(tokens))
    glob, hit = set(global_tokens), set(matches)
    parts = token_parts(tokens, offsets, question) if text is not None else None
    out, prev = [], {"text": None, "question": None}  # where the last shown text / question token ended
    asked_shown = False
    for i in range(start, stop):
        if parts is None:  # token strings only: word pieces ("##") join the previous token
            tok = tokens[i]
            special = _special(tok)
            joined = tok.startswith("##") and not special
            shown = ("" if joined or not out else " ") + (tok if special else tok.removeprefix("##"))
            out.append({"p": i, "t": shown, "g": i in glob, "m": i in hit, "s": special})
            continue
        kind, s, e = parts[i]
        piece = {"p": i, "t": "", "g": i in glob, "m": i in hit, "s": kind == "special"}
        if kind == "special":
            piece["t"] = (" " if out else "") + tokens[i]
        elif kind == "question":
            end = prev["question"]
            if e > s:
                gap = question[end:s] if end is not None else (" " if out else "")
                piece["t"] = gap + question[s if end is None else max(s, end):e]
                prev["question"] = max(e, end or 0)
            else:  # not found in the question: its token string (a blank-line separator as a visible mark)
                tok = tokens[i].removeprefix("##")
                mark = "\u21b5" if "\n" in tok else "\u2423"  # a whitespace token: ↵ or ␣, something to click
                piece["t"] = (" " if out and not tok[:1].isspace() else "") + (tok.strip() or mark)
            piece["q"] = True
            if not asked_shown:  # the first question token shown: a heading instead of a gap
                piece["t"], piece["h"] = piece["t"].lstrip(" "), (" " if out else "") + "Question: "
            asked_shown = True
        else:
            end = prev["text"]  # tokens may share characters (byte-level pieces of one character): shown once
            if end is not None:
                piece["t"] = text[end:s] + text[max(s, end):e]
            else:  # the first document token shown: on its own line after the question
                piece["t"] = ("\n" if asked_shown else (" " if out else "")) + text[s:e]
            prev["text"] = max(e, end or 0)
        out.append(piece)
    if values is not None:
        if len(values) != len(tokens):
            raise ValueError(f"{len(values)} values for {len(tokens)} tokens: give one value per token")
        colors = value_colors(values, value_scale) if colors is None else list(colors)
        for piece in out:
            v = values[piece["p"]]
            piece["c"] = colors[piece["p"]]
            piece["v"] = value_format.format(v) if v is not None and math.isfinite(v) else "n/a"
    return out
