"""Each step's number equals what the page it links to shows. The Lesson page computes the steps (tiny settings, a
short text, the whole document as the pages run it); each step's link is read off the page, its query parameters
applied as the app reads a link, and the linked page opened (AppTest). The number is read off that page (its table,
its summary line) or, where the page shows it only as a figure, computed from the page's own state through the
same library call the page makes. Tiny models: the embedded MiniLM for steps 1-6, a tiny Gemma 3 folder for 7-8."""
import re
import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from lfviz.analysis import patterns
from lfviz.app import cache
from lfviz.app.state import MODEL_CHOICES
from lfviz.lesson import LessonConfig
from lfviz.samples import get_sample
from lfviz.textspec import config_from_text
from tests.apptools import new_app

PAGES_CFG = LessonConfig(window=16, pair_lengths=(256, 1024), time_lengths=(64,), advisor_size=3)
TEXT = get_sample("article").text[:900]  # ~190 tokens: longer than 6 layers' reach with window 16
LAYERS, HEADS = 6, 12  # the embedded MiniLM
GEMMA_TEXT = "The keeper lit the lamp at dusk and logged the passing ships. " * 6


def lesson(model: str | None, text: str, step: int):
    """The Lesson page on `text` (and `model`, a folder) opened at `step`: every step computed."""
    at = new_app(300)
    at.session_state["document"], at.session_state["sample"] = text, "custom"
    at.session_state["lesson_base"] = PAGES_CFG
    if model:
        at.session_state["model"] = model
    at.query_params["step"] = str(step)
    at.switch_page("pages/lesson.py").run()
    assert not at.exception, at.exception
    return at


def step_of(at, number: int, wait_s: float = 600):
    """The step the Lesson page measured for `number` (from the server's cache, where the page and its background
    worker keep it), waiting for the worker when it is not there yet."""
    model, end = at.session_state["model"], time.time() + wait_s
    while True:
        found = [cache.store().get(k) for k in cache.store().keys() if k[:2] == ("lesson", model) and k[3] == number
                 and k[4] == repr(PAGES_CFG)]
        if found or time.time() > end:
            break
        time.sleep(0.5)
    assert found, f"step {number} was not measured"
    return found[-1]


def linked_page(at, number: int, text: str):
    """The page step `number` links to, opened as its link opens it (a folder model, which a link cannot name,
    and a pasted text, which a link cannot carry, are set as the session holds them)."""
    at.query_params["step"] = str(number)
    at.run()
    links = [m.value for m in at.markdown if "with this configuration](" in m.value]
    assert links, f"step {number} shows no link"
    url = urlsplit(re.search(r"\]\((\./[^)]*)\)", links[0]).group(1))
    params = dict(parse_qsl(url.query, keep_blank_values=True))
    page = new_app(300)
    if params.get("model") not in MODEL_CHOICES:
        page.session_state["model"] = params.pop("model")
    if "sample" not in params:
        page.session_state["document"], page.session_state["sample"] = text, "custom"
    for k, v in params.items():
        page.query_params[k] = v
    page.run()
    page.switch_page(f"pages/{url.path.removeprefix('./')}.py").run()
    assert not page.exception, page.exception
    assert not page.error, [e.value for e in page.error]
    return page, params


def table(at, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.fixture(scope="module")
def embedded_lesson():
    return lesson(None, TEXT, 1)


def test_step_1_pairs_are_the_pattern_pages_cost_table(embedded_lesson):
    s = step_of(embedded_lesson, 1)
    page, _ = linked_page(embedded_lesson, 1, TEXT)
    costs = table(page, "pairs per head")
    first = costs[costs["layer"] == 0].set_index("pattern")["pairs per head"]
    assert s.value == first["full"] / first["Longformer"]


def _page_curves(page, n: int):
    ss = page.session_state
    cfg = config_from_text(ss["window"], ss["dilation"], ss["global"])
    specs = cfg.resolve(LAYERS, HEADS)
    return patterns.reach_curves(specs, n, cfg.global_tokens, int(ss["pattern_source"]))["current configuration"]


def test_step_2_reach_is_the_pattern_pages_receptive_field(embedded_lesson):
    s = step_of(embedded_lesson, 2)
    page, params = linked_page(embedded_lesson, 2, TEXT)
    n = page.session_state["_pattern_n"]
    curve = _page_curves(page, n)
    assert s.value == sum(b - a + 1 for a, b in curve[-1])
    said = patterns.describe_reach(curve[-1], n)
    assert said in s.value_text and any(said in m.value for m in page.markdown)  # the page's summary line


def test_step_3_dilated_span_is_the_pattern_pages(embedded_lesson):
    s = step_of(embedded_lesson, 3)
    page, params = linked_page(embedded_lesson, 3, TEXT)
    assert params["dilation"].endswith("4,4")
    n = page.session_state["_pattern_n"]
    dilated = _page_curves(page, n)
    plain = patterns.reach_curves(config_from_text(params["window"], "1", "").resolve(LAYERS, HEADS), n, (),
                                  int(page.session_state["pattern_source"]))["current configuration"]
    first = LAYERS // 2 + 1
    span = lambda runs: runs[-1][1] - runs[0][0] + 1
    assert s.value == span(dilated[first]) / span(plain[first])
    assert patterns.describe_reach(dilated[first], n) in s.details[1]


def test_step_4_gain_is_the_fidelity_pages_table(embedded_lesson):
    s = step_of(embedded_lesson, 4)
    page, params = linked_page(embedded_lesson, 4, TEXT)
    assert params["global"] and page.session_state["global"] == params["global"]
    rows = table(page, "distance").set_index("placement")["distance"]
    assert s.value == pytest.approx(1 - rows["sidebar (in force)"] / rows["no global tokens"], abs=1e-4)


def test_step_5_ramp_distance_is_the_fidelity_pages_table(embedded_lesson):
    s = step_of(embedded_lesson, 5)
    page, params = linked_page(embedded_lesson, 5, TEXT)
    assert "," in params["window"]  # one window per layer
    rows = table(page, "distance").set_index("placement")["distance"]
    assert f"small low, large high {rows['sidebar (in force)']:.6f}" in s.details[1]


def test_step_6_longformer_distance_is_the_pattern_pages_run(embedded_lesson):
    s = step_of(embedded_lesson, 6)
    page, _ = linked_page(embedded_lesson, 6, TEXT)
    page.button(key="pr_run").click().run()
    assert not page.exception
    row = table(page, "measure").set_index("measure").loc["distance from full attention"]
    assert row["Longformer"] == f"{s.value:,.5f}"


@pytest.fixture(scope="module")
def gemma_lesson(tiny_gemma3_folder):
    return lesson(str(tiny_gemma3_folder), GEMMA_TEXT, 8)


def test_step_7_perplexity_with_sinks_is_the_fidelity_pages(gemma_lesson):
    s = step_of(gemma_lesson, 7)
    assert s.value is not None, s.note
    page, params = linked_page(gemma_lesson, 7, GEMMA_TEXT)
    assert page.session_state["global"] == "0,1,2,3"
    rows = table(page, "distance").set_index("placement")
    assert s.value == pytest.approx(rows.loc["sidebar (in force)", "perplexity"], rel=1e-4)


def test_step_8_copy_test_is_the_pattern_pages_experiment(gemma_lesson):
    s = step_of(gemma_lesson, 8)
    assert s.value is not None, s.note
    page, params = linked_page(gemma_lesson, 8, GEMMA_TEXT)
    assert params["sample"] == "copy_test" and page.session_state["window"] == "native"
    page.button(key="ablation_run").click().run()
    said = next(m.value for m in page.markdown if "raises the span's perplexity" in m.value)
    native, worst, ratio = re.search(r"from \*\*([\d,.]+)\*\* to \*\*([\d,.]+)\*\* \(([\d,.]+)x\)", said).groups()
    assert f"perplexity {native} native, {worst} when" in s.value_text and f"({ratio}x)" in s.value_text

