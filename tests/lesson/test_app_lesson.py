"""AppTest of the Lesson page: the step in the URL, next and previous, presenter mode, try it, the way to the full
page, and the handout download (tiny lesson settings, a short text)."""
import json

import pytest

from lfviz.lesson import LessonConfig
from lfviz.samples import get_sample
from tests.apptools import new_app

TINY = LessonConfig(window=16, pair_lengths=(256, 1024), time_lengths=(64, 128), max_tokens=64, advisor_size=3)


def lesson_app(**params):
    at = new_app()
    at.session_state["document"] = get_sample("article").text[:800]
    at.session_state["sample"] = "custom"
    at.session_state["lesson_base"] = TINY
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page("pages/lesson.py").run()
    assert not at.exception, at.exception
    return at


def header(at) -> str:
    return at.header[0].value


@pytest.fixture(scope="module")
def at():
    return lesson_app(step="5")


def test_a_link_opens_its_step(at):
    assert header(at).startswith("Step 5 of 8. Windows per layer")
    assert at.query_params["step"] == ["5"] or at.query_params["step"] == "5"
    assert at.get("plotly_chart")
    links = [m.value for m in at.markdown if "Link to the full page" in m.value]
    assert links and "(./fidelity?" in links[0] and "window=8%2C12%2C14%2C18%2C20%2C24" in links[0]  # the ramp around 16


def test_next_and_previous_move_and_the_url_follows(at):
    at.button(key="lesson_next").click().run()
    assert header(at).startswith("Step 6 of 8") and str(at.query_params["step"]).strip("[]'") == "6"
    at.button(key="lesson_prev").click().run()
    at.button(key="lesson_prev").click().run()
    assert header(at).startswith("Step 4 of 8") and str(at.query_params["step"]).strip("[]'") == "4"
    assert not at.exception


def test_the_last_step_says_which_model_to_load(at):
    for _ in range(4):
        at.button(key="lesson_next").click().run()
    assert header(at).startswith("Step 8 of 8")
    assert at.button(key="lesson_next").disabled
    assert "Gemma 3" in at.button(key="lesson_load").label
    assert any("Gemma 3" in i.value for i in at.info)


def test_try_it_recomputes_one_step(at):
    at.query_params["step"] = "2"
    at.run()
    before = at.success[0].value
    at.slider(key="lesson_try_2").set_value(5).run()
    assert "token 5's" in at.success[0].value and at.success[0].value != before
    assert not at.exception


def test_handout_is_offered(at):
    at.query_params["step"] = "3"
    at.run()
    assert at.get("download_button")


def test_presenter_mode_from_the_url_hides_the_sidebar():
    at = lesson_app(step="3", present="1")
    assert at.toggle(key="lesson_present").value
    css = [m.value for m in at.markdown if "stSidebar" in m.value]
    assert css and "display:none" in css[0]
    assert not at.title  # large type: the page title gives way to the step
    chart = at.get("plotly_chart")[0].proto
    layout = json.loads(chart.spec)["layout"]
    assert layout["font"]["size"] == 18 and layout["legend"]["y"] > 1  # the legend above the plot, not under the fold
    assert layout["margin"]["l"] >= 100  # room for the axis title in large type (it was cut at the left edge)
    assert chart.theme != "streamlit"  # Streamlit's theme would shrink the type again
    at.toggle(key="lesson_present").set_value(False).run()
    assert "present" not in at.query_params and at.title


def test_a_bad_step_in_the_url_is_corrected():
    at = lesson_app(step="12")
    assert header(at).startswith("Step 8 of 8")
    at2 = lesson_app(step="x")
    assert header(at2).startswith("Step 1 of 8") and any("not a number" in w.value for w in at2.warning)


def test_open_the_full_page_with_the_steps_configuration(at):
    at.query_params["step"] = "3"
    at.run()
    at.button(key="lesson_open").click().run()
    assert at.session_state["dilation"].split(";")[-1].endswith("4,4")
    assert at.session_state["window"] == "16"
    assert not at.exception


def test_the_last_step_links_to_the_pattern_page_with_gemma3(at):
    at.query_params["step"] = "8"
    at.run()
    links = [m.value for m in at.markdown if "Open the Pattern page with Gemma 3 270M" in m.value]
    assert links and "(./pattern?model=gemma3-270m&" in links[0] and "sample=copy_test" in links[0]
    assert "window=native" in links[0]


@pytest.fixture
def small_budget():
    from lfviz.app import cache

    runner = cache.get_runner("embedded")
    room = cache.runner_bytes(runner) + 200_000  # the model, and far less than one run of the text takes
    store = cache.reset_store(total=int(room / (1 - cache.MARGIN)) + 1, overhead=0)
    store.put(("runner", "embedded"), runner, cache.runner_bytes(runner))
    yield store
    cache.reset_store()


def test_a_step_over_the_memory_budget_says_what_to_change_instead_of_running(small_budget, monkeypatch):
    import lfviz

    ran = []
    real = lfviz.model.runner.Runner.run
    monkeypatch.setattr(lfviz.model.runner.Runner, "run", lambda self, *a, **k: ran.append(k) or real(self, *a, **k))
    at = lesson_app(step="4")
    said = " ".join(w.value for w in at.warning)
    assert "Step 4 of the lesson would take about" in said and "memory budget" in said and "To fit" in said
    assert ran == []  # refused before any run: steps 1 and 4-6 run the model, none did
    assert not [k for k in small_budget.keys() if k[0] == "lesson" and k[3] in (1, 4, 5, 6)]
    at.query_params["step"] = "2"
    at.run()
    assert "reaches" in at.success[0].value  # a step that runs no model still shows


def test_step_8_tries_another_window_for_the_full_layers(tiny_gemma3_folder):
    at = new_app()
    at.session_state["document"] = "The keeper lit the lamp at dusk and logged the passing ships. " * 6
    at.session_state["sample"], at.session_state["model"] = "custom", str(tiny_gemma3_folder)
    at.session_state["lesson_base"] = TINY
    at.query_params["step"] = "8"
    at.switch_page("pages/lesson.py").run()
    assert not at.exception, at.exception
    before = at.success[0].value
    assert "native" in before and at.get("plotly_chart")
    slider = at.select_slider(key="lesson_try_8")
    assert list(slider.options) == ["8 (their neighbours')", "16", "32"]
    slider.set_value(32).run()
    assert not at.exception and at.success[0].value != before
    assert any("get window 32 here" in c.value for c in at.caption)


def test_on_gemma3_the_copy_test_waits_until_step_8_is_shown(tiny_gemma3_folder):
    from lfviz.app import cache, lesson_steps

    at = new_app()
    at.session_state["document"] = "The keeper logged the passing ships at dusk. " * 9  # a text of its own: nothing cached
    at.session_state["sample"], at.session_state["model"] = "custom", str(tiny_gemma3_folder)
    at.session_state["lesson_base"] = TINY
    at.query_params["step"] = "2"
    at.switch_page("pages/lesson.py").run()
    assert not at.exception, at.exception
    for worker in list(lesson_steps._WORKERS.values()):
        worker.join(120)
    model = str(tiny_gemma3_folder)
    doc = lesson_steps._doc_key(model, at.session_state["document"])
    mine = [k for k in cache.store().keys() if k[:3] == ("lesson", model, doc)]
    assert {k[3] for k in mine} == {1, 2, 3, 4, 5, 6, 7}  # every step but the copy test, measured behind step 2
    at.run()
    assert any("step 8 is measured when shown" in c.value for c in at.caption)
    at.query_params["step"] = "8"
    at.run()
    assert "native" in at.success[0].value
