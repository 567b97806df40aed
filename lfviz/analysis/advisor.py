"""Where should the global tokens go? Propose k global positions that keep a run closest to full attention.

1. One full-attention run (`fidelity.attention_from_afar`) gives the reference and, per key, the attention that
   full attention gives it from beyond the window: the keys the pattern cuts off most.
2. A shortlist (`shortlist`): those keys (spread out), the first token, question tokens, sentence starts, and the
   base run's blind spots (tokens whose state moves most), each with the reason it is there.
3. Greedy choice, measured, in a fixed number of runs (`advisor_search`): the shortlist is ranked by a cheap
   estimate from the reference run, the best few are measured alone, the best of those is the first pick, and
   the picks then grow in measured steps of 1, 2, 4, ... (a step that does not bring the run closer is halved;
   a lone candidate that does not help is dropped). When no candidate brings the run any closer, or the runs are
   spent, it stops before k and says why (`Advice.ended`). Anytime: `on_pick` hears each pick as it is kept (with
   progress and time left) and `should_stop` ends the call between runs, keeping the picks so far.
Every number reported is a measured run (`Advice.picks`, `Advice.table`): re-running a configuration gives it back.
The presets at the same budget k are measured the same way, in one table; the advisor recommends the best row,
which is a preset where the greedy search did worse (the table shows it).
On a converted model a pick can land where the copied position embeddings start over (`positions`): such a token
carries the first position's embedding, so `Advice.restart_note` says so where the pick is shown.
"""
from __future__ import annotations

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
from .advisor_search import Measurer, Progress, Stopped, estimate, extra_runs, fill, greedy, search_runs
from .positions import copied_every, restart_note, restarts
from .presets import preset_positions, sentence_starts

FAR, FIRST, QUESTION, SENTENCE, BLIND, SPREAD = (
    "gets much attention from beyond the window", "first tokens (sinks)", "question token", "sentence start",
    "blind spot: its state moves most", "spread over the text (a relay every n/k tokens)")
FILLED = "fills the budget: from the preset"  # the search's last step (`advisor_search.fill`)
GREEDY = "advisor: greedy picks"
BUDGET_PRESETS = ("first k tokens", "question tokens", "sentence starts", "evenly spaced")


@dataclass(frozen=True)
class Pick:
    position: int
    token: str
    reason: str  # why it was on the shortlist
    gap: float  # measured with this pick and the ones before it
    gain: float  # gap before this pick's step minus gap after it
    measured_with: int = 1  # picks added and measured together in the run that gave `gap` (1: alone)


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
    stopped: bool = False  # `should_stop` ended the call: the picks so far, presets not measured
    ended: str | None = None  # why fewer than k picks (None: k picks)

    def stop(self) -> None:
        """Mark a partial advice (the search ended before it finished): its picks and presets are those measured."""
        self.stopped = True
        self.ended = f"stopped at {len(self.picks)} of {self.k} picks"

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
           progress: Callable[[float, str], None] | None = None, compare_presets: bool = True,
           on_pick: Callable[[Pick, Progress], None] | None = None, should_stop: Callable[[], bool] | None = None,
           runs: int | None = None) -> Advice:
    """Propose k global positions for `text` under `config`'s window and dilation (its global tokens are set
    aside: the advisor places all k). objective: see `fidelity.gap` ("auto": perplexity for causal LMs, else the
    pooled embedding). size: shortlist length (default min(n, max(8, k + 4) + min(k, 4) - 1, 32)). reference: a
    precomputed `attention_from_afar(runner, text, config, question, queries)` (it depends on the window and
    dilation only). runs: the search's measured runs at most (default `advisor_search.search_runs`).
    Anytime (`iter_advice` underneath): progress(fraction, what) is told before each run; on_pick(pick, Progress)
    hears each pick as it is kept, with progress and time left; should_stop() is asked before each run, and when it
    says True the call returns what it has (`Advice.stopped`, `Advice.ended`: "stopped at j of k picks")."""
    advice = None
    for advice, pick, status in iter_advice(runner, text, config, k, objective, label, queries, question, size,
                                            reference, progress, compare_presets, should_stop, runs):
        if pick is not None and on_pick is not None:
            on_pick(pick, status)
    return advice


def iter_advice(runner, text: str, config: AttentionConfig, k: int, objective: str = "auto",
                label: str | None = None, queries=(), question: str | None = None, size: int | None = None,
                reference=None, progress: Callable[[float, str], None] | None = None, compare_presets: bool = True,
                should_stop: Callable[[], bool] | None = None, runs: int | None = None):
    """`advise`, as a generator: yields (advice so far, the new Pick or None, Progress) after each kept pick and
    once at the end (pick None). The advice object is the same throughout, updated in place: a caller that stops
    iterating (or is interrupted) keeps a consistent partial Advice with every pick measured so far; mark it
    with `Advice.stop()`. Same arguments as `advise`."""
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

    def run(positions):
        return runner.run(text, config=base.replace(global_tokens=positions), queries=queries, question=question,
                          capture=False)

    measure = Measurer(lambda positions: gap(full, run(positions), objective, label), should_stop, started)
    presets = [(kind, budget_preset(kind, t.tokens, t.offsets, text, t.question_tokens, k))
               for kind in (BUDGET_PRESETS if compare_presets else ())]
    presets = [(kind, pos) for kind, pos in presets if pos]
    advice = Advice(objective, label, k, base, math.nan, [], [], [], 0, 0.0, copied_every(runner),
                    reference_name(full))
    planned = [0]  # runs planned in all, as last told

    def tell(picks, runs_left, what):  # before each new run: what it is for, the plan counted honestly
        planned[0] = measure.runs + runs_left
        advice.runs, advice.seconds = measure.runs, time.perf_counter() - started
        say(measure.progress(picks, k, runs_left, what).fraction, f"{what} (run {measure.runs + 1} of {planned[0]})")

    def status(what):
        advice.runs, advice.seconds = measure.runs, time.perf_counter() - started
        return measure.progress(len(advice.picks), k, max(0, planned[0] - measure.runs), what)

    try:
        if should_stop is not None and should_stop():
            raise Stopped
        distinct = len({pos for _, pos in presets})
        extra = extra_runs(n, k) if runs is None else 0  # more search runs where the picks still lose to a preset
        budget = search_runs(k, size, distinct, n) if runs is None else max(1, int(runs))  # size: the longest list
        tell(0, 1 + distinct + budget + extra, "running the base configuration (no global tokens)")
        base_run = run(())
        measure.runs += 1
        advice.base_gap = measure.gaps[()] = gap(full, base_run, objective, label)
        if objective == "perplexity":
            blind = loss_increase(full, base_run)
        else:
            blind = (1 - F.cosine_similarity(full.last_hidden_state, base_run.last_hidden_state, dim=-1)).tolist()
        advice.shortlist = shortlist(far, t.tokens, t.offsets, text, t.question_tokens, base, size, blind, first)
        reasons = dict(advice.shortlist)
        budget = search_runs(k, len(advice.shortlist), distinct, n) if runs is None else budget
        filling = 1 if k > 1 and budget > 1 else 0  # the search's last run: the picks plus the best preset's
        every = advice.copied_every  # its restarts (and token 0) all carry the first position's embedding

        def measure_presets():
            todo = len({pos for _, pos in presets if not measure.known(pos)})
            for kind, pos in presets[len(advice.presets):]:
                if not measure.known(pos):
                    tell(len(advice.picks), todo + filling + extra, f"measuring the preset {kind!r}")
                    todo -= 1
                advice.presets.append({"strategy": kind, "positions": pos, "gap": measure(pos)})

        def fill_up():  # the last step: the picks plus the best measured preset's other positions (a generator)
            if not filling:
                return False
            kind, pool = min(((r["strategy"], r["positions"]) for r in advice.presets),
                             key=lambda r: measure.gaps[tuple(sorted(r[1]))], default=(
                                 "evenly spaced", budget_preset("evenly spaced", t.tokens, t.offsets, text, (), k)))
            # where the preset is closer than the picks, it keeps more of its positions: the first half of the
            # picks (the best steps) and the preset's other positions, spread, for the rest (sinks and relays help
            # as a group: SmolLM2, question passage, window 128, k = 4: tokens 0-3 0.313, picks 0, 22, 885, 1 0.340,
            # picks 0, 22 with tokens 1 and 3 0.300)
            leads = measure.gaps.get(tuple(sorted(pool)), math.inf) <= advice.greedy_gap
            keep = min(len(advice.picks), max(1, k // 2)) if leads else len(advice.picks)
            if keep >= k:
                return False
            kept = fill(measure, [p.position for p in advice.picks[:keep]], advice.greedy_gap, pool, k,
                        lambda what: tell(len(advice.picks), 1 + extra, f"{what} from the preset {kind!r}"))
            if kept is None:
                return False
            batch, after, _ = kept
            before = advice.picks[keep - 1].gap if keep else advice.base_gap
            del advice.picks[keep:]  # the later picks give way where the preset's positions did better
            for p in batch:
                advice.picks.append(Pick(p, t.tokens[p], f"{FILLED} {kind!r}", after, before - after, len(batch)))
                yield advice, advice.picks[-1], status(f"pick {len(advice.picks)} of {k}")
            return True

        search = greedy(measure, advice.shortlist, estimate(advice.shortlist, far, blind), advice.base_gap, k,
                        budget - filling, tell, lambda: 0 if filled else distinct + filling + extra,  # after it
                        group=(lambda p: p % every == 0 or None) if every else None)
        filled, sent = False, None
        while True:
            try:
                item = search.send(sent)
            except StopIteration as done:
                advice.ended = done.value
                break
            sent = None
            if item is None:  # the search's runs are spent: it ends here (0), or goes on with more runs
                sent = 0
                if extra:  # the presets and the fill now; where the picks still lose to a preset, `extra` more runs
                    measure_presets()
                    filled = True
                    kept = yield from fill_up()
                    best = min((r["gap"] for r in advice.presets), default=math.inf)
                    if not kept and advice.greedy_gap >= best and len(advice.picks) < k:
                        sent = extra
                    extra = 0
                continue
            batch, after, gain = item
            for p in batch:
                advice.picks.append(Pick(p, t.tokens[p], reasons[p], after, gain, len(batch)))
                yield advice, advice.picks[-1], status(f"pick {len(advice.picks)} of {k}")
        extra = 0
        measure_presets()
        if not filled:
            yield from fill_up()
        if len(advice.picks) >= k:
            advice.ended = None
    except Stopped:
        advice.stop()
    planned[0] = measure.runs  # what was planned and not run (a fill not needed, a search ended early) is not
    say(1.0, "stopped" if advice.stopped else "done")
    yield advice, None, status("stopped" if advice.stopped else "done")


def describe_gap(objective: str, value: float, reference: str = "full attention") -> str:
    """The gap in words, e.g. "perplexity +12.3% over full attention" (reference: `fidelity.reference_name`)."""
    if objective == "perplexity":
        return f"perplexity {value:+.1%} over {reference}"
    if objective == "embedding":
        return f"pooled-embedding cosine {1 - value:.5f} to {reference}"
    return f"score {value:.4f} from {reference}" if math.isfinite(value) else "n/a"
