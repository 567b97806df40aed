"""Placement strategies a study compares, written as on the command line: `none`, `first`, `first-k:4` (sinks),
`question`, `sentence-starts`, `every-k:256`, `evenly:8` (8 tokens evenly spaced) and `advisor:8` (the placement
advisor's recommendation with a budget of 8, `analysis.advisor`)."""
from __future__ import annotations

from dataclasses import dataclass

from ..analysis.advisor import budget_preset
from ..analysis.presets import MAX_PRESET, every_kth, sentence_starts

KINDS = {  # name -> (takes a number, what it places)
    "none": (False, "no global tokens"),
    "first": (False, "the first token ([CLS] or the first word)"),
    "first-k": (True, "the first k tokens (sinks)"),
    "question": (False, "the question's tokens (documents with a question)"),
    "sentence-starts": (False, "the first token of every sentence"),
    "every-k": (True, "every k-th token"),
    "evenly": (True, "k tokens evenly spaced over the document"),
    "advisor": (True, "the placement advisor's recommendation for a budget of k"),
}
MAX_K = 4096


@dataclass(frozen=True)
class Strategy:
    name: str  # as written: "every-k:256"
    kind: str
    k: int | None = None


def _usage() -> str:
    return ", ".join(f"{kind}{':K' if takes else ''}" for kind, (takes, _) in KINDS.items())


def parse_strategies(text: str) -> list[Strategy]:
    """"first,question,every-k:256,advisor:8" -> Strategies; ValueError naming the bad one and the choices."""
    out: list[Strategy] = []
    for raw in str(text).split(","):
        name = raw.strip().lower()
        if not name:
            continue
        kind, _, number = name.partition(":")
        if kind not in KINDS:
            raise ValueError(f"unknown strategy {raw.strip()!r}: choose from {_usage()}")
        takes = KINDS[kind][0]
        if takes != bool(number):
            raise ValueError(f"strategy {raw.strip()!r}: " + (f"give a number, e.g. {kind}:8" if takes else
                                                               f"{kind} takes no number"))
        k = None
        if takes:
            if not number.isdigit() or not 1 <= int(number) <= MAX_K:
                raise ValueError(f"strategy {raw.strip()!r}: the number must be 1 to {MAX_K}")
            k = int(number)
        strategy = Strategy(f"{kind}:{k}" if takes else kind, kind, k)
        if strategy not in out:
            out.append(strategy)
    if not out:
        raise ValueError(f"no strategies given: choose from {_usage()}")
    return out


def placement(strategy: Strategy, tokens: list[str], offsets, text: str, question_tokens) -> tuple[int, ...]:
    """The global positions a (non-advisor) strategy picks in one tokenized document."""
    n = len(tokens)
    if strategy.kind == "none":
        return ()
    if strategy.kind == "first":
        return (0,)
    if strategy.kind == "first-k":
        return tuple(range(min(strategy.k, n)))
    if strategy.kind == "question":
        return tuple(question_tokens)[:MAX_PRESET]
    if strategy.kind == "sentence-starts":
        return sentence_starts(tokens, offsets, text)
    if strategy.kind == "every-k":
        return every_kth(n, strategy.k)
    if strategy.kind == "evenly":
        return budget_preset("evenly spaced", tokens, offsets, text, question_tokens, min(strategy.k, n))
    raise ValueError(f"strategy {strategy.name!r} is measured by the advisor, not placed directly")
