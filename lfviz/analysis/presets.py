"""Where to put global tokens: presets computed from the tokens and the text, and carrying chosen tokens over to
an edited text (pure, no model)."""
from __future__ import annotations

import difflib
import re

MAX_PRESET = 512  # more global tokens than this is almost never what a user wants from one click
PRESETS = ("first token", "first k tokens (sinks)", "question tokens", "sentence starts", "every k-th token",
           "tokens matching a word", "tokens matching a regex")


def every_kth(n: int, k: int, start: int = 0) -> tuple[int, ...]:
    if k < 1:
        raise ValueError(f"every k-th token needs k >= 1, got {k}")
    return tuple(range(start, n, k))[:MAX_PRESET]


def sentence_starts(tokens: list[str], offsets: list[tuple[int, int]] | None = None,
                    text: str | None = None) -> tuple[int, ...]:
    """The first token of every sentence: the first real token, and each token after one ending in . ! or ?
    that is followed by a space, so "2.4 km" or "3.5%" do not end a sentence (with offsets, a space is a gap
    between the two tokens' characters; without, the next token must not continue a word ("##") or be a
    digit). With the text too, a sentence must not start in lower case ("e.g. in May"). Special tokens (offset
    (0, 0), or bracketed like [CLS] without offsets) are skipped."""
    def special(i):
        return offsets[i] == (0, 0) if offsets else (tokens[i].startswith(("[", "<")) and tokens[i].endswith(("]", ">")))

    out, ends = [], True
    prev = None
    for i, tok in enumerate(tokens):
        if special(i):
            continue
        if prev is not None and ends:
            spaced = offsets[i][0] > offsets[prev][1] if offsets else not (tok.startswith("##") or tok[:1].isdigit())
            lower = bool(offsets and text) and text[offsets[i][0]:offsets[i][0] + 1].islower()
            ends = spaced and not lower
        if ends:
            out.append(i)
        ends, prev = tok.endswith((".", "!", "?")), i
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
    if kind == "first k tokens (sinks)":  # what sliding-window language models keep visible to every token
        return tuple(range(min(int(k), len(tokens), MAX_PRESET)))
    if kind == "question tokens":
        return tuple(question_tokens)[:MAX_PRESET]
    if kind == "sentence starts":
        return sentence_starts(tokens, offsets, text)
    if kind == "every k-th token":
        return every_kth(len(tokens), int(k))
    if kind in ("tokens matching a word", "tokens matching a regex"):
        return matching(pattern, tokens, offsets, text, regex=kind == "tokens matching a regex")
    raise ValueError(f"unknown preset {kind!r}: choose one of {', '.join(PRESETS)}")


def remap_positions(positions, old_tokens: list[str], new_tokens: list[str], min_run: int = 3
                    ) -> tuple[tuple[int, ...], list[str]]:
    """Carry global token positions from one tokenized text to an edited one: each token follows its place in
    the text (an inserted question or word shifts it), found by aligning the two token sequences. A token counts
    as found only inside a run of at least `min_run` matching tokens (or at the very start, where [CLS] sits), so
    a common word in an unrelated text is not mistaken for it; when less than half of the text still matches, it
    is another text altogether, and only a token at the very start ([CLS]) is carried over.
    Returns the new positions (ascending) and one note per token that moved or was dropped."""
    keep, notes = [], []
    positions = sorted({int(p) for p in positions})
    if not positions:
        return (), notes
    matcher = difflib.SequenceMatcher(None, old_tokens, new_tokens, autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size >= min_run or (b.a == b.b == 0 and b.size)]
    if sum(b.size for b in blocks) < 0.5 * min(len(old_tokens), len(new_tokens)):  # another text: keep the start
        blocks = [b for b in blocks if b.a == b.b == 0]
    for p in positions:
        token = old_tokens[p] if p < len(old_tokens) else None
        block = next((b for b in blocks if b.a <= p < b.a + b.size), None)
        if block is None:
            notes.append(f"{p} {token!r} dropped: it is not in the new text" if token is not None else
                         f"{p} dropped: beyond the old text")
            continue
        q = block.b + (p - block.a)
        keep.append(q)
        if q != p:
            notes.append(f"{p} {token!r} moved to {q}")
    return tuple(sorted(set(keep))), notes
