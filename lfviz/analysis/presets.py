"""Where to put global tokens: presets computed from the tokens and the text (pure, no model)."""
from __future__ import annotations

import re

MAX_PRESET = 512  # more global tokens than this is almost never what a user wants from one click
PRESETS = ("first token", "question tokens", "sentence starts", "every k-th token", "tokens matching a word",
           "tokens matching a regex")


def every_kth(n: int, k: int, start: int = 0) -> tuple[int, ...]:
    if k < 1:
        raise ValueError(f"every k-th token needs k >= 1, got {k}")
    return tuple(range(start, n, k))[:MAX_PRESET]


def sentence_starts(tokens: list[str], offsets: list[tuple[int, int]] | None = None) -> tuple[int, ...]:
    """The first token of every sentence: the first real token, and each token after one ending in . ! or ?
    Special tokens (offset (0, 0), or bracketed like [CLS] when there are no offsets) are skipped."""
    out, new_sentence = [], True
    for i, tok in enumerate(tokens):
        special = offsets[i] == (0, 0) if offsets else (tok.startswith(("[", "<")) and tok.endswith(("]", ">")))
        if special:
            continue
        if new_sentence:
            out.append(i)
        new_sentence = tok.endswith((".", "!", "?"))
    return tuple(out)[:MAX_PRESET]


def matching(pattern: str, tokens: list[str], offsets: list[tuple[int, int]] | None, text: str | None,
             regex: bool = False) -> tuple[int, ...]:
    """Tokens whose characters overlap a match of `pattern` in the text: a whole word (case-insensitive) or
    a regular expression. Without offsets, the word is matched against the tokens themselves."""
    if not pattern or not pattern.strip():
        raise ValueError("the search is empty: type a word or a regular expression")
    try:
        rx = re.compile(pattern if regex else rf"\b{re.escape(pattern.strip())}\b", re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"{pattern!r} is not a valid regular expression ({e}); escape special characters "
                         f"like ( [ * with a backslash") from None
    if not offsets or text is None:
        return tuple(i for i, t in enumerate(tokens) if rx.fullmatch(t.removeprefix("##")))[:MAX_PRESET]
    spans = [m.span() for m in rx.finditer(text) if m.end() > m.start()]
    out, j = [], 0
    for i, (s, e) in enumerate(offsets):
        if e <= s:
            continue
        while j < len(spans) and spans[j][1] <= s:
            j += 1
        if j < len(spans) and spans[j][0] < e:
            out.append(i)
    return tuple(out)[:MAX_PRESET]


def toggle(current: tuple[int, ...], positions) -> tuple[int, ...]:
    """Flip each position in or out of the global set."""
    s = set(current)
    for p in positions:
        s.symmetric_difference_update({int(p)})
    return tuple(sorted(s))


def preset_positions(kind: str, tokens: list[str], offsets: list[tuple[int, int]] | None = None,
                     text: str | None = None, question_tokens=(), k: int = 256, pattern: str = "") -> tuple[int, ...]:
    """The positions one of PRESETS picks in a tokenized document; ValueError saying what to fix."""
    if kind == "first token":
        return (0,)
    if kind == "question tokens":
        return tuple(question_tokens)[:MAX_PRESET]
    if kind == "sentence starts":
        return sentence_starts(tokens, offsets)
    if kind == "every k-th token":
        return every_kth(len(tokens), int(k))
    if kind in ("tokens matching a word", "tokens matching a regex"):
        return matching(pattern, tokens, offsets, text, regex=kind == "tokens matching a regex")
    raise ValueError(f"unknown preset {kind!r}: choose one of {', '.join(PRESETS)}")
