"""The Lesson page's glue: which step (the URL's `step`), presenter mode (`present=1`), the steps precomputed
with progress on first open and kept per (model, document, settings), each step's "try it" control, the way to
the full page with the same configuration, and the handout. The steps themselves are `lfviz.lesson`."""
from __future__ import annotations

import atexit
import hashlib
import threading
import time
from dataclasses import replace
from urllib.parse import urlencode

import plotly.graph_objects as go
import streamlit as st

from ..analysis import fidelity
from ..analysis.layers import sliding_window
from ..analysis.peak_memory import run_bytes, trim
from ..lesson import LessonConfig, Step, compute_step
from ..lesson.handout import handout_html
from ..lesson.steps import STEPS
from . import cache, state

COUNT = len(STEPS)
WINDOWS = [16, 32, 64, 128, 256, 512]
# "try it": the LessonConfig field each step lets the class change, and its widget
TRY = {1: ("window", "Window (two-sided)"), 2: ("source", "Token whose reach is drawn"),
       3: ("dilation", "Dilation of the dilated heads"), 4: ("k", "Global tokens the advisor places"),
       5: ("window", "Window everywhere (the ramp keeps the same total)"), 6: ("window", "Longformer's window"),
       7: ("sinks", "Sinks (first tokens kept in view)"),
       8: ("full_window", "Window the full layers get when made to slide")}
# fixed strings only: never user text in unsafe HTML
PRESENT_CSS = ("<style>[data-testid='stSidebar'],[data-testid='stSidebarCollapsedControl'],"
               "[data-testid='stSidebarNav']{display:none !important}"
               ".stMainBlockContainer,.block-container{max-width:96vw;font-size:1.45rem}"
               ".stMainBlockContainer p,.stMainBlockContainer li{font-size:1.45rem !important}"
               "h1{font-size:3rem !important}h2{font-size:2.4rem !important}</style>")
KEYS_JS = ("<script>(function(){var d=window.parent.document;"
           # a rerun may replace this frame: the newest frame's handler replaces the one before (a removed frame's
           # functions stop running)
           "if(d.__lessonKeys){d.removeEventListener('keydown',d.__lessonKeys);}"
           "d.__lessonKeys=function(e){var t=e.target||{};var tag=t.tagName||'';"
           "if(tag==='INPUT'||tag==='TEXTAREA'||tag==='SELECT'||(t.getAttribute&&t.getAttribute('role')==='slider'))"
           "{return;}"
           "var want=(e.key==='ArrowRight'||e.key==='PageDown')?'lesson_next':"
           "(e.key==='ArrowLeft'||e.key==='PageUp')?'lesson_prev':null;if(!want){return;}"
           "var b=d.querySelector('.st-key-'+want+' button');if(b&&!b.disabled){e.preventDefault();b.click();}};"
           "d.addEventListener('keydown',d.__lessonKeys);})();</script>")


def current_step() -> int:
    """The step the URL names (1..COUNT); a bad value is corrected in place, with a note."""
    raw = st.query_params.get("step", "1")
    try:
        step = int(raw)
    except ValueError:
        step = 1
        st.warning(f"The link's step {raw[:20]!r} is not a number: showing step 1.")
    clamped = min(max(step, 1), COUNT)
    if str(clamped) != raw:
        st.query_params["step"] = str(clamped)
    return clamped


def _go(step: int) -> None:
    st.query_params["step"] = str(min(max(step, 1), COUNT))


def presenter() -> bool:
    """The presenter toggle, bound to the URL's present=1; when on, the sidebar hides and type grows."""
    ss = st.session_state
    if "lesson_present" not in ss:
        ss["lesson_present"] = st.query_params.get("present") == "1"

    def flip():
        if ss["lesson_present"]:
            st.query_params["present"] = "1"
        else:
            st.query_params.pop("present", None)

    on = st.toggle("Presenter mode (large type, no sidebar; arrow keys move between steps)", key="lesson_present",
                   on_change=flip)
    if on:
        st.markdown(PRESENT_CSS, unsafe_allow_html=True)
        st.iframe(KEYS_JS, height=1)
    return on


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


def try_it(number: int, runner, text: str, cfgs: dict) -> None:
    """The step's one control; a changed value changes that step's settings only (measured when shown)."""
    ss = st.session_state
    field, label = TRY[number]
    cfg = cfgs[number]
    now = getattr(cfg, field)
    if field == "window":
        value = st.select_slider(f"Try it: {label}", WINDOWS, value=now if now in WINDOWS else 64,
                                 key=f"lesson_try_{number}")
    elif field == "source":
        n = len(runner.tokenize(text).input_ids)
        if n < 2:
            st.caption("Try it: a longer text lets you pick the token whose reach is drawn.")
            return
        value = st.slider(f"Try it: {label}", 0, n - 1, n // 2 if now is None else min(now, n - 1),
                          key=f"lesson_try_{number}")
    elif field == "full_window":
        own = sliding_window(runner.native_windows)
        options = [own, 2 * own, 4 * own]
        value = st.select_slider(f"Try it: {label}", options, value=now if now in options else own,
                                 format_func=lambda w: f"{w:,}" + (" (their neighbours')" if w == own else ""),
                                 key=f"lesson_try_{number}",
                                 help="A causal layer with window W sees itself and the W/2 tokens before it: give "
                                      "the full layers a window that reaches the first copy, and the copy comes back.")
        value = None if value == own else value
    else:
        top = {"dilation": 8, "k": 4, "sinks": 8}[field]
        value = st.slider(f"Try it: {label}", 0 if field == "sinks" else 1, top, int(now), key=f"lesson_try_{number}")
    if value != now:
        ss["_lesson_cfgs"][number] = cfgs[number] = replace(cfg, **{field: value})


def open_full_page(step) -> None:
    """Set the step's configuration in the sidebar's session keys and switch to its full page."""
    ss = st.session_state
    if step.params.get("model") and step.params["model"] != ss["model"]:
        ss["model"] = step.params["model"]
    if step.params.get("sample") and step.params["sample"] != ss.get("sample"):
        state.use_sample(step.params["sample"])
    ss.update(window=step.params["window"], dilation=step.params.get("dilation", "1"),
              **{"global": step.params.get("global", "")})
    ss["_lesson_open"] = step.page


def link(step) -> str:
    """A relative link to the full page with the step's configuration (for a new tab, or to share)."""
    path = step.page.removeprefix("pages/").removesuffix(".py")
    params = {"model": st.session_state["model"], "sample": st.session_state.get("sample", ""), **step.params}
    params.setdefault("dilation", "1")
    if params.get("sample") == "custom":
        params.pop("sample")
    return f"./{path}?{urlencode(params)}"


def needs_model(step) -> None:
    """A step the loaded model cannot run: which model to load (a button), and a link to its full page there."""
    ss = st.session_state
    st.info(step.note)
    label = state.MODEL_CHOICES.get(step.needs, step.needs).split(":")[0]
    c1, c2 = st.columns(2)
    c1.button(f"Load {label} and measure this step", key="lesson_load", on_click=lambda: ss.update(model=step.needs))
    page = step.page.removeprefix("pages/").removesuffix(".py").replace("_", " ").title()
    c2.markdown(f"[Open the {page} page with {label} and this step's configuration]({link(step)})")


def show(number: int, runner, text: str, cfgs: dict, present: bool = False) -> Step:
    """Step `number` on screen (computed first when it is not yet); returns it."""
    ss = st.session_state
    spec = STEPS[number - 1]
    st.header(f"Step {number} of {COUNT}. {spec.title}")
    st.markdown(spec.claim)
    step = shown_step(number, runner, text, cfgs)
    if step.needs:
        needs_model(step)
        return step
    if step.value_text or number in (1, 2, 3):  # a step refused or failed keeps its settings: nothing to try yet
        before = cfgs[number]
        try_it(number, runner, text, cfgs)  # before the number: a changed value is measured before it is shown
        if cfgs[number] != before:
            step = shown_step(number, runner, text, cfgs)
    if not step.value_text:
        st.warning(step.note)
        return step
    st.success(f"**{step.value_text}**")
    if step.figure is not None:
        # a projector: the figure's type grows with the page's (a copy: the handout keeps its own size)
        # (Streamlit's theme would set its own small type, and a legend below the plot falls under the fold)
        figure = go.Figure(step.figure).update_layout(
            font_size=18, height=560, title_font_size=22, margin=dict(t=120),
            legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom")) if present else step.figure
        st.plotly_chart(figure, key=f"lesson_figure_{number}", width="stretch", theme=None if present else "streamlit")
    for line in step.details:
        st.caption(line)
    if step.note:
        st.caption(step.note)
    c1, c2 = st.columns(2)
    # a callback records the click, so a rerun before the body runs (routing) cannot lose it
    c1.button("Open the full page with this configuration", key="lesson_open", on_click=open_full_page, args=(step,))
    if ss.pop("_lesson_open", None):
        st.switch_page(step.page)
    c2.markdown(f"[Link to the full page with this configuration]({link(step)})")
    return step


def navigation(number: int) -> None:
    c1, c2, c3 = st.columns([1, 4, 1])
    c1.button("Previous step", key="lesson_prev", on_click=_go, args=(number - 1,), disabled=number <= 1)
    c2.progress(number / COUNT, text=f"Step {number} of {COUNT}")
    c3.button("Next step", key="lesson_next", on_click=_go, args=(number + 1,), disabled=number >= COUNT)


def handout(steps: dict, model_id: str, title: str) -> str:
    """The handout HTML of `steps` (number -> Step, None for a lazy step not shown yet: its section says so)."""
    ordered = []
    for n in range(1, COUNT + 1):
        step = steps.get(n)
        if step is None:
            spec = STEPS[n - 1]
            step = Step(n, spec.key, spec.title, spec.claim, page=spec.page,
                        note=f"Not measured yet: show step {n} in the app (it takes a while on this model), then "
                             "download the handout again.")
        ordered.append(step)
    return handout_html(ordered, model_id, title)


def handout_button(runner, text: str, cfgs: dict) -> None:
    """The handout, made when clicked (every step measured first, or waited for: the background may still run)."""
    ss = st.session_state
    sample = ss.get("sample", "custom")
    title = "pasted text" if sample == "custom" else sample
    model = ss["model"]
    st.download_button("Download the handout (one HTML file, opens offline)",
                       lambda: handout(wait_for_steps(runner, text, cfgs, model), runner.model_id, title),
                       file_name="lfviz-lesson.html", mime="text/html", key="lesson_handout")


def prepared_note(done: dict) -> str:
    took = sum(s.seconds for s in done.values() if s is not None)
    lazy = [n for n, s in done.items() if s is None and STEPS[n - 1].lazy]
    return (f"The steps measured so far took {took:.1f} s (kept for this model and document, in every tab); moving "
            "between them recomputes nothing" + (f"; step {', '.join(map(str, lazy))} is measured when shown."
                                                 if lazy else "."))
