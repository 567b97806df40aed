"""The Lesson page's glue: which step (the URL's `step`), presenter mode (`present=1`), the steps precomputed
with progress on first open and kept per (model, document, settings), each step's "try it" control, the way to
the full page with the same configuration, and the handout. The steps themselves are `lfviz.lesson`."""
from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from urllib.parse import urlencode

import plotly.graph_objects as go
import streamlit as st

from ..lesson import LessonConfig, build_lesson, compute_step
from ..lesson.handout import handout_html
from ..lesson.steps import STEPS
from . import state

COUNT = len(STEPS)
WINDOWS = [16, 32, 64, 128, 256, 512]
# "try it": the LessonConfig field each step lets the class change, and its widget
TRY = {1: ("window", "Window (two-sided)"), 2: ("source", "Token whose reach is drawn"),
       3: ("dilation", "Dilation of the dilated heads"), 4: ("k", "Global tokens the advisor places"),
       5: ("window", "Window everywhere (the ramp keeps the same total)"), 6: ("window", "Longformer's window"),
       7: ("sinks", "Sinks (first tokens kept in view)")}
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


def _key(model: str, text: str) -> str:
    return hashlib.sha1(f"{model}\0{text}".encode()).hexdigest()[:16]


def steps(runner, text: str) -> dict[int, tuple[LessonConfig, object]]:
    """Every step for this model and document, computed once with a progress bar, then kept in the session."""
    ss = st.session_state
    base = ss.get("lesson_base") or LessonConfig()
    key = _key(ss["model"], text)
    kept = ss.get("_lesson")
    if kept and kept[0] == key:
        return kept[1]
    bar, started = st.progress(0.0, text="Preparing the lesson..."), time.time()

    def progress(done, total, what):
        bar.progress(done / total, text=f"Preparing the lesson: {done}/{total} steps ({time.time() - started:.0f} s);"
                                        f" now {what}")

    built = build_lesson(runner, text, base, progress=progress, model_key=ss["model"])
    bar.empty()
    ss["_lesson"] = (key, {s.number: (base, s) for s in built})
    ss["_lesson_seconds"] = time.time() - started
    return ss["_lesson"][1]


def try_it(number: int, runner, text: str, done: dict) -> None:
    """The step's one control; a changed value recomputes that step only."""
    ss = st.session_state
    if number not in TRY:
        st.caption("Try it: on the full page, pick which layers slide and run the experiment again.")
        return
    field, label = TRY[number]
    cfg, step = done[number]
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
    else:
        top = {"dilation": 8, "k": 4, "sinks": 8}[field]
        value = st.slider(f"Try it: {label}", 0 if field == "sinks" else 1, top, int(now), key=f"lesson_try_{number}")
    if value != now:
        with st.spinner(f"Measuring step {number} again..."):
            new = replace(cfg, **{field: value})
            done[number] = (new, compute_step(number, runner, text, new, ss["model"]))


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


def show(number: int, runner, text: str, done: dict, present: bool = False) -> None:
    ss = st.session_state
    step = done[number][1]
    st.header(f"Step {number} of {COUNT}. {step.title}")
    st.markdown(step.claim)
    if step.needs:
        st.info(step.note)
        label = state.MODEL_CHOICES.get(step.needs, step.needs)
        st.button(f"Load {label.split(':')[0]} and measure this step", key="lesson_load",
                  on_click=lambda: ss.update(model=step.needs))
        return
    try_it(number, runner, text, done)  # before the number: a changed value is measured before it is shown
    step = done[number][1]
    if not step.value_text:
        st.warning(step.note)
        return
    st.success(f"**{step.value_text}**")
    if step.figure is not None:
        # a projector: the figure's type grows with the page's (a copy: the handout keeps its own size)
        figure = go.Figure(step.figure).update_layout(font_size=18, height=520) if present else step.figure
        st.plotly_chart(figure, key=f"lesson_figure_{number}", width="stretch")
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


def navigation(number: int) -> None:
    c1, c2, c3 = st.columns([1, 4, 1])
    c1.button("Previous step", key="lesson_prev", on_click=_go, args=(number - 1,), disabled=number <= 1)
    c2.progress(number / COUNT, text=f"Step {number} of {COUNT}")
    c3.button("Next step", key="lesson_next", on_click=_go, args=(number + 1,), disabled=number >= COUNT)


def handout_button(runner, done: dict) -> None:
    ss = st.session_state
    sample = ss.get("sample", "custom")
    title = "pasted text" if sample == "custom" else sample
    key = (ss.get("_lesson", ("",))[0], tuple((n, id(s)) for n, (_, s) in sorted(done.items())))
    if ss.get("_lesson_handout", (None,))[0] != key:
        ordered = [s for _, (_, s) in sorted(done.items())]
        ss["_lesson_handout"] = (key, handout_html(ordered, runner.model_id, title))
    st.download_button("Download the handout (one HTML file, opens offline)", ss["_lesson_handout"][1],
                       file_name="lfviz-lesson.html", mime="text/html", key="lesson_handout")
