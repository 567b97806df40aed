"""Numbers in English words for captions and hovers: ordinals (1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ...)."""
from __future__ import annotations


def ordinal(n: int) -> str:
    """"2nd" for 2: -st, -nd, -rd after a last digit 1, 2, 3, except in 11, 12, 13 (and 111, 112, ...): -th."""
    n = int(n)
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
