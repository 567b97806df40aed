"""The Lesson page's glue: which step (the URL's `step`), presenter mode (`present=1`), each step's "try it"
control, the way to the full page with the same configuration, and the handout. How the steps are measured and
kept: `lesson_steps.py`; the steps themselves: `lfviz.lesson`."""
from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

import plotly.graph_objects as go
import streamlit as st

from ..analysis.layers import sliding_window
from ..lesson import Step
from ..lesson.handout import handout_html
from ..lesson.steps import STEPS
from . import state
from .lesson_steps import configs, precompute, prepared_note, shown_step, wait_for_steps  # noqa: F401 (the page's)

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
            font_size=18, height=560, title_font_size=22, margin=dict(t=120, l=100),
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
