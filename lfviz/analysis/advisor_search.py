"""The advisor's measured search, anytime: picks come one at a time (or a few together), each with the gap of a
real run, and a caller may stop it between runs and keep what it has.

A run of the whole document is what every number costs, so the search spends a fixed number of them
(`search_runs`), whatever the shortlist's size:
1. Screen: rank the shortlist by a cheap estimate from the reference run (`estimate`: the attention full attention
   gives a key from beyond the window, and how far the base run moved the token's state) and measure only the
   best few alone ("singles"). The best single is the first pick.
2. Grow in measured steps of 1, 2, 4, ... picks: the next candidates (measured singles by their gain, then the
   rest by estimate) are added together and measured once; a step that brings the run closer is kept (its picks
   share the step's measured gap: `Pick.measured_with`), one that does not is halved and tried again, and a lone
   candidate that does not help is dropped.
3. Fill (`fill`, the last run, kept for it): the picks plus the best measured preset's other positions, thinned
   to the k - picks left; where that preset is closer than the picks, only their first half stays and the preset
   fills the rest (`advisor.iter_advice`; the later picks give way when it brings the run closer). Relays (evenly spaced) and sinks (the first tokens) help
   as a group and little alone, so the steps above, which add the best candidates one group at a time, seldom
   find them; kept when it brings the run closer.
The whole call (`advisor.iter_advice`: the base run, the presets, the search) spends at most `call_runs` runs
(`CALL_RUNS`, or `LONG_RUNS` on a long text at a large k, where the search pauses when its runs are spent: the
presets and the fill are measured, and only where the picks still lose to a preset does it go on with
`extra_runs` more, up to `CALL_RUNS`); with its full-attention reference (about 3 plain passes on 3,921 tokens,
1.5 for SmolLM2 on 1,024) that is at most about 15 plain forward passes' time.
A placement measured once is never run again (`Measurer` keeps every measured gap by its positions), so a preset
that equals a single (k = 1: the first token) costs nothing more.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Progress:
    """Where an advisor call stands, told with every pick (`advise(on_pick=...)`) and every run (`progress`)."""
    picks: int  # picks kept so far
    k: int  # picks asked for
    runs: int  # measured runs so far (the reference not counted)
    planned: int  # runs this call plans at most (runs + what is left of the search and the presets)
    elapsed: float  # seconds since the call began, the reference run included
    left: float  # estimated seconds left: the planned runs left times the mean run so far
    what: str

    @property
    def fraction(self) -> float:
        return min(0.99, self.runs / max(1, self.planned))


class Stopped(Exception):
    """Raised inside the search when `should_stop()` says so; the picks kept so far stand."""


class Measurer:
    """Measured gaps by placement: runs each new placement once (a repeat is free), counts runs and times them,
    and checks `should_stop` before each run. measure(positions) -> gap."""

    def __init__(self, run: Callable[[tuple[int, ...]], float], should_stop: Callable[[], bool] | None = None,
                 started: float | None = None):
        self._run, self._stop = run, should_stop or (lambda: False)
        self.gaps: dict[tuple[int, ...], float] = {}
        self.runs, self.run_seconds = 0, 0.0
        self.started = time.perf_counter() if started is None else started

    def __call__(self, positions) -> float:
        key = tuple(sorted(int(p) for p in positions))
        if key not in self.gaps:
            if self._stop():
                raise Stopped
            t = time.perf_counter()
            self.gaps[key] = self._run(key)
            self.runs += 1
            self.run_seconds += time.perf_counter() - t
        return self.gaps[key]

    def known(self, positions) -> bool:
        return tuple(sorted(int(p) for p in positions)) in self.gaps

    def progress(self, picks: int, k: int, runs_left: int, what: str) -> Progress:
        mean = self.run_seconds / self.runs if self.runs else 0.0
        return Progress(picks, k, self.runs, self.runs + runs_left, time.perf_counter() - self.started,
                        mean * runs_left, what)


def step_sizes(picks: int) -> list[int]:
    """The measured steps that grow 1 pick to `picks`: 1, 2, 4, ... (the last cut to fit). [] for picks <= 1."""
    sizes, have, step = [], 1, 1
    while have < picks:
        sizes.append(min(step, picks - have))
        have += sizes[-1]
        step *= 2
    return sizes


CALL_RUNS = 11  # measured runs per advisor call at most: the base run, the presets and the search
# Past LONG_TEXT tokens the full-attention reference costs more (n^2 against a run's n x window: MiniLM, 3,921
# tokens, window 128: 4.5 plain passes), so a call with k >= LONG_K (runs of up to k global tokens, the dearest,
# and steps that add several picks a run) spends LONG_RUNS. Smaller k keeps CALL_RUNS: at k = 1 each single is an
# answer (MiniLM contract, window 512: 9 runs lost the pick, -6.3% -> -5.6%), and at k = 4 9 runs leave no
# growing step (MiniLM article, window 128: a win of -4.5% against evenly spaced became a loss, +2.0%). Where the
# LONG_RUNS call's picks still lose to a preset, it goes on up to CALL_RUNS (`extra_runs`).
LONG_TEXT, LONG_K, LONG_RUNS = 2048, 8, 9


def call_runs(n: int, k: int) -> int:
    """The measured runs an advisor call on n tokens with budget k spends at most (the reference not counted)."""
    return LONG_RUNS if n > LONG_TEXT and k >= LONG_K else CALL_RUNS


def extra_runs(n: int, k: int) -> int:
    """The runs a call that spends `LONG_RUNS` may add when, its search, presets and fill done, the picks still lose
    to a preset: the growing steps it cut, up to `CALL_RUNS` in all (MiniLM article, window 512, k = 16: 9 runs
    kept 2 picks, +2.9% against the first 16 tokens; 11 kept 8, -5.0%). 0 where the call spends `CALL_RUNS`."""
    return CALL_RUNS - call_runs(n, k)


def search_runs(k: int, candidates: int, presets: int = 3, n: int = 0) -> int:
    """The runs the search spends at most (singles to screen, the growing steps, one retry, the fill): what
    `call_runs(n, k)` leaves after the base run and `presets` distinct preset runs, at least 3, never more than the
    shortlist's singles plus its steps need."""
    need = candidates + len(step_sizes(k)) + (2 if k > 1 else 0)
    return min(max(3, call_runs(n, k) - 1 - presets), need)


def thin(positions, count: int) -> list[int]:
    """`count` of `positions` (ascending), spread evenly over them by index: all of them when there are no more."""
    pool = sorted(int(p) for p in positions)
    if len(pool) <= count:
        return pool
    return sorted({pool[int(i)] for i in np.linspace(0, len(pool) - 1, max(0, count)).round()}) if count else []


def fill(measure: Measurer, chosen: list[int], current: float, preset, k: int,
         tell: Callable[[str], None] = lambda what: None):
    """The last step: `chosen` plus the preset's other positions thinned to k - len(chosen) (`thin`), measured
    once (tell(what) hears it before a new run). Returns (batch, gap, gain) when it brings the run closer than
    `current`, else None."""
    batch = thin([p for p in preset if p not in set(chosen)], k - len(chosen))
    if not batch:
        return None
    if not measure.known(list(chosen) + batch):
        tell(f"measuring the {len(chosen)} pick(s) filled up to {k}")
    after = measure(list(chosen) + batch)
    return (batch, after, current - after) if after < current else None


def estimate(candidates, far, blind=None) -> dict[int, float]:
    """A cheap score per candidate, from the reference and base runs alone: its share of the attention full
    attention gives from beyond the window (summed over layers), plus a quarter of its own drift in the base run
    (how far its state moved: `blind`), each scaled by its largest value over the shortlist. Higher: measured
    first."""
    pos = [p for p, _ in candidates]
    f = np.asarray([float(far[p]) for p in pos])
    b = np.zeros(len(pos)) if blind is None else np.clip(np.nan_to_num(np.asarray([float(blind[p]) for p in pos],
                                                                                  dtype=float), nan=0.0), 0, None)
    f = f / f.max() if len(f) and f.max() > 0 else f
    b = b / b.max() if len(b) and b.max() > 0 else b
    return {p: float(x + 0.25 * y) for p, x, y in zip(pos, f, b)}


def greedy(measure: Measurer, candidates, scores: dict[int, float], base_gap: float, k: int, runs: int,
           tell: Callable[[int, int, str], None], later: Callable[[], int] = lambda: 0,
           group: Callable[[int], object] = None):
    """Grow up to k picks from `candidates` in at most `runs` measured runs (see the module docstring). A generator:
    yields (positions, gap, gain) for each kept step, as it is kept; returns None when k picks were kept, else why
    fewer ("no candidate brought the run closer", "the search's N runs were spent"). When the runs are spent it
    first yields None: the caller sends the runs it may add (0: it ends there), so a caller can measure what it
    compares with before it decides (`advisor.iter_advice`: the presets). tell(picks, runs_left, what) hears before
    each run what it is for and how many runs are left (`later()`: the runs planned after the search, the presets'
    and the fill's, included).
    group(p): candidates with the same non-None group do one job (a converted model's copied positions restart:
    each carries the first position's embedding), so one of a group is screened, and once one is picked the
    others wait at the back of the queue."""
    steps = step_sizes(k)
    group = group or (lambda p: None)
    ranked = sorted((p for p, _ in candidates), key=lambda p: -scores[p])
    groups, screened = set(), []  # by estimate, one of a group (k = 1: every one, each single is an answer)
    for p in ranked:
        if k == 1 or group(p) is None or group(p) not in groups:
            screened.append(p)
            groups.add(group(p))
    # at least 3 screened alone (the estimate is rough: its best is often no help), the steps get the rest
    singles = max(1, min(len(screened), runs, max(3, runs - len(steps) - (1 if k > 1 else 0))))
    start = measure.runs
    spent = lambda: measure.runs - start
    gains = {}
    for p in screened[:singles]:
        tell(0, runs - spent() + later(), f"measuring candidate {p} alone ({len(gains) + 1} of {singles})")
        gains[p] = base_gap - measure([p])
    # then the measured singles that helped, best first, and the others by estimate
    queue = [p for p in sorted(gains, key=lambda p: -gains[p]) if gains[p] > 0] + [p for p in ranked if p not in gains]
    chosen, current, size = [], base_gap, 1  # the first step is the best single: measured already
    while len(chosen) < k and queue:
        batch = queue[:min(size, k - len(chosen))]
        if not measure.known(chosen + batch):
            if spent() >= runs:
                paused = measure.runs
                more = yield None  # paused: the caller sends the runs it adds
                start += measure.runs - paused  # the caller's own runs meanwhile are not the search's
                if not more:
                    return f"the search's {runs} runs were spent"
                runs += int(more)
            tell(len(chosen), runs - spent() + later(), f"measuring {len(batch)} more pick(s) on top of "
                                                              f"{len(chosen)}")
        after = measure(chosen + batch)
        if after < current:
            chosen += batch
            yield batch, after, current - after
            current, queue = after, queue[len(batch):]
            done = {group(p) for p in batch} - {None}
            queue = [p for p in queue if group(p) not in done] + [p for p in queue if group(p) in done]
            size = len(chosen)  # each kept step doubles the picks
        elif len(batch) > 1:
            size = max(1, len(batch) // 2)  # a smaller step of the same best candidates
        else:
            queue.pop(0)  # alone on top of the picks it does not help
    return None if len(chosen) >= k else "no candidate brought the run closer"
