"""The lab's baseline on a sliding-window LLM: 'Native' (the model's own pattern) is offered and compared with, and
the caption says it is the baseline in force; the Fidelity page names the native pattern as its reference."""
import pytest
from apptools import new_app

TEXT = "The keeper lit the lamp at dusk and logged the passing ships. " * 6


@pytest.fixture(scope="module")
def gemma_folder(tiny_gemma3_folder):
    return tiny_gemma3_folder


def test_the_lab_compares_with_the_native_pattern(gemma_folder):
    at = new_app(300)
    at.session_state["document"] = TEXT
    at.session_state["sample"] = "custom"
    at.run()
    at.session_state["model"] = str(gemma_folder)
    at.run()
    at.session_state["window"] = "8"  # the variant: every layer slides
    at.switch_page("pages/global_lab.py").run()
    assert not at.exception, at.exception
    at.radio(key="lab_baseline_kind").set_value("native").run()
    assert not at.exception, at.exception
    in_force = next(c.value for c in at.caption if c.value.startswith("In force"))
    assert in_force.startswith("In force: **Native**") and "variant (the sidebar's) window 8" in in_force


def test_the_fidelity_page_names_the_native_pattern_as_its_reference(gemma_folder):
    at = new_app(300)
    at.session_state["document"] = TEXT
    at.session_state["sample"] = "custom"
    at.run()
    at.session_state["model"] = str(gemma_folder)
    at.run()
    at.switch_page("pages/fidelity.py").run()
    assert not at.exception, at.exception
    assert any("Reference: this model's **native pattern**" in c.value for c in at.caption)
