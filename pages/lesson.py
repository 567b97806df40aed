"""Lesson: the seed's claims one step at a time, each with a figure and the number that proves it, measured now
on the loaded model and document; presenter mode, links to the full pages, and a handout."""
import streamlit as st

from lfviz.app import cache, lesson, routing

routing.ensure_app_routing()
ss = st.session_state
number = lesson.current_step()
present = lesson.presenter()
if not present:
    st.title("Lesson: sparse attention in eight steps")
    st.caption("Each step is a claim, a figure and the number that proves it, measured now on this model and "
               "document. Move with the buttons (or the arrow keys in presenter mode); the URL names the step.")
runner = cache.current_runner()
text = ss.get("document", "")
if runner is None:
    st.stop()
if not text.strip():
    st.info("No document yet: pick a sample or paste text on the Document page.")
    st.stop()
cfgs = lesson.configs(text)
lesson.navigation(number)
shown = lesson.show(number, runner, text, cfgs, present)
done = {**lesson.precompute(runner, text, cfgs), number: shown}  # after the step: it shows while the others run
if not present:
    lesson.handout_button(runner, text, cfgs)
    st.caption(lesson.prepared_note(done))
