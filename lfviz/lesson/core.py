"""A lesson as data: steps, each a claim with the number that proves it (measured now, on the loaded model and
document, by the analysis the full page uses), a pure Plotly figure, and the page and query parameters that open
the same configuration in full. No streamlit here: the app, the CLI and the handout read the same `Step`s.

`LessonConfig` holds the lesson's settings. Every step runs on the whole document, as the page it links to does
(`max_tokens` may cut it to its first tokens, for a quick handout: each cut step says so). The defaults keep the
measured times short (step 1 times 256 and 1,024 tokens; the advisor picks 1 token from a shortlist of 4); `FULL` is
what a lecturer with a fast machine may run instead (measured time at 1k, 4k and 16k tokens, 4 global tokens).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import plotly.graph_objects as go

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what runs now)


@dataclass(frozen=True)
class LessonConfig:
    window: int = 64  # two-sided (HF convention): window // 2 keys each side
    pair_lengths: tuple[int, ...] = (1024, 4096, 16384)  # step 1: pairs and score memory (analytic, any length)
    time_lengths: tuple[int, ...] = (256, 1024)  # step 1: measured time of one forward pass
    source: int | None = None  # step 2: the token whose reach is drawn (None: the middle)
    dilation: int = 4  # step 3: dilation of the upper layers' last heads
    k: int = 1  # step 4: global tokens the advisor places
    advisor_size: int = 4  # step 4: its shortlist
    max_tokens: int | None = None  # steps 4-7 on the document's first max_tokens tokens (None: all of it)
    sinks: int = 4  # step 7: first tokens every token keeps in view
    full_window: int | None = None  # step 8: the window Gemma 3's full layers get when made to slide (None: its own
    # sliding window, as on the Pattern page)


FULL = LessonConfig(time_lengths=(1024, 4096, 16384), k=4, advisor_size=12)


@dataclass
class Step:
    number: int  # 1-based, as in the URL
    key: str
    title: str
    claim: str
    value: float | None = None  # the number that proves the claim (None: not computed, see `needs`)
    value_text: str = ""  # that number in words, with its unit
    figure: go.Figure | None = None
    page: str = "pages/pattern.py"  # the full page
    params: dict = field(default_factory=dict)  # query parameters that open it with this configuration
    details: list[str] = field(default_factory=list)  # further numbers, one line each
    needs: str | None = None  # the model to load when this step cannot run on the loaded one (model key)
    note: str = ""  # why it did not run, or a caveat
    seconds: float = 0.0  # time to compute the step


def cut_text(runner, text: str, max_tokens: int | None) -> str:
    """The text up to its `max_tokens`-th token (at a token's end, so no word is cut in two)."""
    t = runner.tokenize(text)
    if max_tokens is None or len(t.input_ids) <= max_tokens or not t.offsets:
        return text
    ends = [e for _, e in t.offsets[:max_tokens] if e > 0]
    return text[: max(ends)] if ends else text
