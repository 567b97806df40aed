"""Where should the global tokens go? Propose k global positions that keep a run closest to full attention.

1. One full-attention run (`fidelity.attention_from_afar`) gives the reference and, per key, the attention that
   full attention gives it from beyond the window: the keys the pattern cuts off most.
2. A shortlist (`shortlist`): those keys (spread out), the first token, question tokens, sentence starts, and the
   base run's blind spots (tokens whose state moves most), each with the reason it is there.
3. Greedy choice, measured: every shortlisted token is run once on top of the current picks; the best is kept.
   Later rounds re-measure lazily (the candidate with the best earlier gain first, kept when its fresh gain still
   beats every other candidate's earlier one), so k picks cost about `size + 2k` runs, not `size * k`. When no
   candidate brings the run any closer, it stops before k and says so (fewer picks).
Every number reported is a measured run (`Advice.picks`, `Advice.table`): re-running a configuration gives it back.
The presets at the same budget k are measured the same way, in one table; the advisor recommends the best row,
which is a preset where the greedy search did worse (the table shows it).
On a converted model a pick can land where the copied position embeddings start over (`positions`): such a token
carries the first position's embedding, so `Advice.restart_note` says so where the pick is shown.
"""
from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch.nn.functional as F

from ..config import AttentionConfig
from .compare import loss_increase
from .fidelity import attention_from_afar, default_objective, gap, reference_config, reference_name
from .positions import copied_every, restart_note, restarts
from .presets import preset_positions, sentence_starts

FAR, FIRST, QUESTION, SENTENCE, BLIND, SPREAD = (
    "gets much attention from beyond the window", "first tokens (sinks)", "question token", "sentence start",
    "blind spot: its state moves most", "spread over the text (a relay every n/k tokens)")
GREEDY = "advisor: greedy picks"
BUDGET_PRESETS = ("first k tokens", "question tokens", "sentence starts", "evenly spaced")


@dataclass(frozen=True)
class Pick:
    position: int
    token: str
    reason: str  # why it was on the shortlist
    gap: float  # measured with this pick and the ones before it
    gain: float  # gap before this pick minus gap after


@dataclass
class Advice:
    objective: str
    label: str | None
    k: int
    base: AttentionConfig  # the configuration without global tokens
    base_gap: float
    picks: list[Pick]
    shortlist: list[tuple[int, str]]
    presets: list[dict] = field(default_factory=list)  # {"strategy", "positions", "gap"}
    runs: int = 0
    seconds: float = 0.0
    copied_every: int | None = None  # the model's position embeddings repeat every this many tokens (converted)
    reference: str = "full attention"  # what the gaps are measured from: `fidelity.reference_name`

    @property
    def greedy_positions(self) -> tuple[int, ...]:
        return tuple(sorted(p.position for p in self.picks))

    @property
    def greedy_gap(self) -> float:
        return self.picks[-1].gap if self.picks else self.base_gap

    @property
    def recommended(self) -> dict:
        """The best measured placement: the greedy picks, or a preset at the same k where one did better."""
        rows = [{"strategy": GREEDY, "positions": self.greedy_positions, "gap": self.greedy_gap}, *self.presets]
        return min(rows, key=lambda r: r["gap"])

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(self.recommended["positions"])

    @property
    def gap(self) -> float:
        return self.recommended["gap"]

    @property
    def config(self) -> AttentionConfig:
        return self.base.replace(global_tokens=self.positions)

    @property
    def restarts(self) -> list[int]:
        """The picks and recommended positions that sit where a converted model's copied position embeddings
        restart (multiples of `copied_every`): they carry the first position's embedding."""
        return restarts([p.position for p in self.picks] + list(self.positions), self.copied_every)

    def restart_note(self) -> str | None:
        """The warning to show with the picks when some sit at a restart, else None."""
        return restart_note(self.restarts, self.copied_every) if self.restarts else None

    def table(self) -> pd.DataFrame:
        """The greedy picks and every preset at the same k, best first, with the base (no global tokens) and
        which one the advisor recommends."""
        rows = [{"strategy": GREEDY, "positions": self.greedy_positions, "gap": self.greedy_gap}, *self.presets,
                {"strategy": "no global tokens", "positions": (), "gap": self.base_gap}]
        frame = pd.DataFrame(rows)
        frame["tokens"] = frame["positions"].map(len)
        frame["recommended"] = frame["strategy"] == self.recommended["strategy"]
        frame = frame.sort_values("gap", kind="stable").reset_index(drop=True)
        return frame[["strategy", "tokens", "gap", "recommended", "positions"]]


def _spread(order, spacing: int, count: int, taken: set[int]) -> list[int]:
    """The first `count` positions of `order` that are at least `spacing` from every one taken before."""
    out = []
    for p in order:
        p = int(p)
        if p in taken or any(abs(p - t) < spacing for t in out):
            continue
        out.append(p)
        if len(out) == count:
            break
    return out


def shortlist(far: np.ndarray, tokens, offsets, text, question_tokens, config: AttentionConfig, size: int,
              blind=None, first: int = 1) -> list[tuple[int, str]]:
    """Up to `size` candidate positions with the reason each is there: half from the keys full attention reaches
    most from beyond the window (at least a quarter window apart), then the `first` tokens (sinks: they work as a
    group, so the greedy search needs them all on the list), question tokens,
    sentence starts and blind spots (those best reached from afar first), positions spread evenly over the text
    (relays: what "evenly spaced" does), then more far-reached keys."""
    n = len(tokens)
    one_sided = max(1, min(w // 2 for w in (config.window if isinstance(config.window, tuple) else (config.window,))))
    order = [p for p in np.argsort(-far, kind="stable") if far[p] > 0]  # keys full attention reaches from afar
    picked: dict[int, str] = {}

    def add(positions, reason, count):
        for p in _spread(positions, 1, count, set(picked)):
            picked[p] = reason

    for p in _spread(order, max(1, one_sided // 4), max(1, size // 2), set()):
        picked[p] = FAR
    add(range(min(first, n)), FIRST, first)
    by_far = lambda ps: sorted(ps, key=lambda p: -far[p])
    add(by_far(question_tokens), QUESTION, max(1, size // 8))
    add(by_far(sentence_starts(tokens, offsets, text)), SENTENCE, max(1, size // 8))
    if blind is not None:
        add(np.argsort(-np.nan_to_num(np.asarray(blind, float), nan=-1.0), kind="stable"), BLIND, max(1, size // 8))
    add(sorted({int(i) for i in np.arange(size // 4) * n // max(1, size // 4)} - {0}), SPREAD, max(1, size // 4))
    add(order, FAR, size - len(picked))
    return list(picked.items())[:size] if n else []


def budget_preset(kind: str, tokens, offsets, text, question_tokens, k: int) -> tuple[int, ...]:
    """The presets at a budget of k global tokens: the first k tokens, the first k question tokens, k sentence
    starts spread over the text, k evenly spaced tokens (from 0). Empty where the text has none."""
    n = len(tokens)
    if kind == "first k tokens":
        return preset_positions("first k tokens (sinks)", tokens, k=k)
    if kind == "question tokens":
        return tuple(sorted(question_tokens)[:k])
    if kind == "sentence starts":
        starts = sentence_starts(tokens, offsets, text)
        if len(starts) <= k:
            return tuple(starts)
        return tuple(sorted({starts[int(i)] for i in np.linspace(0, len(starts) - 1, k).round()}))
    if kind == "evenly spaced":
        return tuple(sorted({int(i) for i in np.arange(k) * n // k}))
    raise ValueError(f"unknown budget preset {kind!r}: one of {', '.join(BUDGET_PRESETS)}")


def advise(runner, text: str, config: AttentionConfig, k: int, objective: str = "auto", label: str | None = None,
           queries=(), question: str | None = None, size: int | None = None, reference=None,
           progress: Callable[[float, str], None] | None = None, compare_presets: bool = True) -> Advice:
    """Propose k global positions for `text` under `config`'s window and dilation (its global tokens are set
    aside: the advisor places all k). objective: see `fidelity.gap` ("auto": perplexity for causal LMs, else the
    pooled embedding). size: shortlist length (default min(n, max(8, k + 4) + min(k, 4) - 1, 32)). reference: a precomputed
    `attention_from_afar(runner, text, config, question, queries)` (it depends on the window and dilation only).
    progress(fraction, what) is told as runs finish."""
    started = time.perf_counter()
    t = runner.tokenize(text, question)
    n = len(t.input_ids)
    if not 1 <= int(k) <= n:
        raise ValueError(f"k = {k}: ask for 1 to {n} global tokens (the text has {n} tokens)")
    k = int(k)
    first = min(k, 4)  # the first tokens on the shortlist, as sinks
    size = min(n, max(8, k + 4) + first - 1, 32) if size is None else max(k, min(int(size), n))
    base = config.replace(global_tokens=())
    say = progress or (lambda f, what: None)
    say(0.0, f"running {reference_name(reference_config(runner, n))} (the reference) ...")
    full, far = reference if reference is not None else attention_from_afar(runner, text, base, question, queries)
    objective = default_objective(full) if objective == "auto" else objective
    runs = 0
    expected = size + 2 * k + (len(BUDGET_PRESETS) if compare_presets else 0) + 1

    def measured(positions) -> float:
        nonlocal runs
        res = runner.run(text, config=base.replace(global_tokens=tuple(sorted(positions))), queries=queries,
                         question=question, capture=False)
        runs += 1
        say(min(0.99, runs / expected), f"measured {runs} placements")
        return gap(full, res, objective, label)

    base_run = runner.run(text, config=base, queries=queries, question=question, capture=False)
    runs += 1
    base_gap = gap(full, base_run, objective, label)
    if objective == "perplexity":
        blind = loss_increase(full, base_run)
    else:
        blind = (1 - F.cosine_similarity(full.last_hidden_state, base_run.last_hidden_state, dim=-1)).tolist()
    candidates = shortlist(far, t.tokens, t.offsets, text, t.question_tokens, base, size, blind, first)
    reasons = dict(candidates)

    chosen: list[Pick] = []
    current = base_gap
    # lazy greedy: a heap of (-(gain when last measured), round it was measured in, position, gap measured)
    heap = []
    for p, _ in candidates:
        after = measured([p])
        heap.append((after - current, 0, p, after))
    heapq.heapify(heap)
    for step in range(k):
        while heap:
            neg_gain, when, p, after = heapq.heappop(heap)
            if when == step:  # measured on top of the current picks and still the best: keep it
                if neg_gain > 0:
                    heap = []  # nothing left on the shortlist brings the run closer: stop before k
                    break
                chosen.append(Pick(p, t.tokens[p], reasons[p], after, current - after))
                current = after
                break
            fresh = measured([c.position for c in chosen] + [p])
            heapq.heappush(heap, (fresh - current, step, p, fresh))
        if not heap and len(chosen) <= step:
            break
    presets = []
    if compare_presets:
        for kind in BUDGET_PRESETS:
            pos = budget_preset(kind, t.tokens, t.offsets, text, t.question_tokens, k)
            if pos:
                presets.append({"strategy": kind, "positions": pos, "gap": measured(pos)})
    say(1.0, "done")
    return Advice(objective, label, k, base, base_gap, chosen, candidates, presets, runs,
                  time.perf_counter() - started, copied_every(runner), reference_name(full))


def describe_gap(objective: str, value: float, reference: str = "full attention") -> str:
    """The gap in words, e.g. "perplexity +12.3% over full attention" (reference: `fidelity.reference_name`)."""
    if objective == "perplexity":
        return f"perplexity {value:+.1%} over {reference}"
    if objective == "embedding":
        return f"pooled-embedding cosine {1 - value:.5f} to {reference}"
    return f"score {value:.4f} from {reference}" if math.isfinite(value) else "n/a"
