"""The Lesson page's measured steps: each kept in the server's byte-bounded cache (shared by every tab) per model,
document and settings, checked against the memory budget before it runs; the shown step measured first (with
progress), the others by a background thread. The page's widgets are `lesson.py`; the steps are `lfviz.lesson`."""
from __future__ import annotations

import atexit
import hashlib
import threading
import time

import streamlit as st

from ..analysis import fidelity
from ..analysis.peak_memory import run_bytes, trim
from ..lesson import LessonConfig, Step, compute_step
from ..lesson.steps import STEPS
from . import cache

COUNT = len(STEPS)


def _doc_key(model: str, text: str) -> str:
    return hashlib.sha1(f"{model}\0{text}".encode()).hexdigest()[:16]


def configs(text: str) -> dict[int, LessonConfig]:
    """Each step's settings for this model and document: the lesson's (`lesson_base`), or what its "try it" set."""
    ss = st.session_state
    base = ss.get("lesson_base") or LessonConfig()
    key = _doc_key(ss["model"], text)
    if ss.get("_lesson_for") != key:  # another model or document: every "try it" starts again
        ss["_lesson_for"], ss["_lesson_cfgs"] = key, {}
    return {n: ss["_lesson_cfgs"].get(n, base) for n in range(1, COUNT + 1)}


def _store_key(model: str, number: int, text: str, cfg: LessonConfig) -> tuple:
    return ("lesson", model, _doc_key(model, text), number, repr(cfg))


def _step_bytes(step) -> int:
    return 4096 + (len(step.figure.to_json()) if step.figure is not None else 0)


def _largest_run(number: int, runner, text: str, cfg: LessonConfig):
    """(tokens, configuration) of the largest model run step `number` makes, or None when it runs no model."""
    from ..analysis.layers import full_layers
    from ..lesson.core import cut_text
    from ..samples import get_sample

    causal = cache.is_causal(runner)
    if number in (2, 3) or (number == 1 and causal) or (number == 7 and not causal):
        return None  # counts and reach sets only, or a step that says which model to load
    if number == 8:
        if not (causal and full_layers(runner.native_windows)):
            return None
        return len(runner.tokenize(get_sample("copy_test").text).input_ids), runner.native_config()
    n = max(cfg.time_lengths) if number == 1 else len(runner.tokenize(cut_text(runner, text, cfg.max_tokens)).input_ids)
    return n, fidelity.full_attention(n)  # the reference run under full attention is the step's largest


def _measure(model: str, number: int, runner, text: str, cfg: LessonConfig, progress) -> Step:
    """Step `number` measured now, after checking that its largest run fits the memory budget (MemoryBudgetError,
    saying what to change, when it does not); that run's estimated peak is held while the step runs."""
    need = _largest_run(number, runner, text, cfg)
    peak = 0
    if need is not None:
        rb = run_bytes(runner, need[0], need[1], capture=False)
        cache.check_fits(model, rb, need[1], False, what=f"Step {number} of the lesson")
        peak = rb.peak
    s = cache.store()
    with s.pin(("runner", model)), s.hold(peak):
        step = compute_step(number, runner, text, cfg, model, progress=progress)
    trim()
    return step


def get_step(number: int, runner, text: str, cfg: LessonConfig, progress=None, model: str | None = None):
    """Step `number` under `cfg`: from the server's cache (shared by every tab and the background worker, within
    the memory budget), else measured now when it fits the budget (a step another thread is measuring is waited
    for, not measured twice), else a step that says why it did not run and what to change (not kept: the budget may
    leave room later). None when `progress` is None and the step is not measured yet."""
    model = model or st.session_state["model"]
    s, key = cache.store(), _store_key(model, number, text, cfg)
    hit = s.get(key)
    if hit is not None or progress is None:
        return hit
    try:
        return s.get_or_compute(key, lambda: _measure(model, number, runner, text, cfg, progress), size=_step_bytes)
    except cache.MemoryBudgetError as e:
        spec = STEPS[number - 1]
        return Step(number, spec.key, spec.title, spec.claim, page=spec.page, note=str(e))


def _bar(what: str):
    bar, started = st.progress(0.0, text=what), time.time()

    def progress(done, total, name):
        left = (time.time() - started) / done * (total - done) if done else None
        bar.progress(min(1.0, done / max(total, 1)), text=f"{what}: {done}/{total}; now {name}"
                     + (f"; about {left:.0f} s left" if left is not None and done < total else ""))
    return bar, progress


def shown_step(number: int, runner, text: str, cfgs: dict) -> Step:
    """The step on screen, measured now if it is not yet (a lazy step with its runs' progress)."""
    step = get_step(number, runner, text, cfgs[number])
    if step is None:
        bar, progress = _bar(f"Measuring step {number}")
        step = get_step(number, runner, text, cfgs[number], progress=progress)
        bar.empty()
    return step


_WORKERS: dict[tuple, threading.Thread] = {}  # (model, document, settings) -> the thread measuring its steps
_WORKERS_LOCK = threading.Lock()
_STOP = threading.Event()


@atexit.register
def _stop_workers() -> None:
    """At exit, let a worker finish its step and stop: a thread killed inside a torch op aborts the process."""
    _STOP.set()
    with _WORKERS_LOCK:
        workers = list(_WORKERS.values())
    for w in workers:
        w.join()


def stop_background() -> None:
    """Stop every background worker after its current step and let new ones start (tests: a lesson opened by one
    test must not keep measuring, and holding memory in the cache, while the next one runs)."""
    _stop_workers()
    with _WORKERS_LOCK:
        _WORKERS.clear()
    _STOP.clear()


def _todo(model: str, runner, text: str, cfgs: dict) -> list[int]:
    return [n for n in cfgs if not STEPS[n - 1].lazy and cache.store().get(_store_key(model, n, text, cfgs[n])) is None]


def measure_all(model: str, runner, text: str, cfgs: dict) -> None:
    """Every step not measured yet (lazy ones apart: they run when shown), in order (no streamlit: a thread)."""
    for n in _todo(model, runner, text, cfgs):
        if _STOP.is_set():
            return
        try:
            get_step(n, runner, text, cfgs[n], progress=lambda *a: None, model=model)
        except Exception:  # noqa: BLE001 - a failed step is measured again (and its error shown) when it is shown
            pass


def precompute(runner, text: str, cfgs: dict) -> dict[int, Step | None]:
    """Start measuring the other steps in a background thread (one per model, document and settings, shared by
    every tab), so that the shown step is not kept waiting and moving to a step measured already is instant; say
    how far it is. Returns the steps measured so far (None: not yet)."""
    model = st.session_state["model"]
    todo = _todo(model, runner, text, cfgs)
    if todo:
        key = (model, _doc_key(model, text), tuple(repr(cfgs[n]) for n in sorted(cfgs)))
        with _WORKERS_LOCK:
            worker = _WORKERS.get(key)
            if worker is None or not worker.is_alive():
                worker = threading.Thread(target=measure_all, args=(model, runner, text, dict(cfgs)), daemon=True,
                                          name="lfviz-lesson")
                _WORKERS[key] = worker
                worker.start()
        ready = len(cfgs) - len(todo) - sum(STEPS[n - 1].lazy for n in cfgs)
        st.caption(f"{ready} of {len(cfgs) - sum(s.lazy for s in STEPS)} steps measured; the others (steps "
                   f"{', '.join(map(str, todo))}) are being measured in the background: moving to one first measures "
                   "it (or waits for it).")
    return {n: get_step(n, runner, text, cfgs[n]) for n in cfgs}


def wait_for_steps(runner, text: str, cfgs: dict, model: str) -> dict[int, Step | None]:
    """Every non-lazy step, measured now where it is not yet (another thread's measurement is waited for)."""
    done = {}
    for n in cfgs:
        lazy = STEPS[n - 1].lazy
        done[n] = get_step(n, runner, text, cfgs[n], progress=None if lazy else (lambda *a: None), model=model)
    return done


def prepared_note(done: dict) -> str:
    took = sum(s.seconds for s in done.values() if s is not None)
    lazy = [n for n, s in done.items() if s is None and STEPS[n - 1].lazy]
    return (f"The steps measured so far took {took:.1f} s (kept for this model and document, in every tab); moving "
            "between them recomputes nothing" + (f"; step {', '.join(map(str, lazy))} is measured when shown."
                                                 if lazy else "."))
