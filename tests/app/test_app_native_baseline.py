"""The lab's baseline on a sliding-window LLM: 'Native' (the model's own pattern) is offered and compared with, and
the caption says it is the baseline in force; the Fidelity page names the native pattern as its reference."""
from apptools import app_with_model

TEXT = "The keeper lit the lamp at dusk and logged the passing ships. " * 6


def test_the_lab_compares_with_the_native_pattern(tiny_gemma3_folder):
    at = app_with_model(str(tiny_gemma3_folder), TEXT)
    at.session_state["window"] = "8"  # the variant: every layer slides
    at.switch_page("pages/global_lab.py").run()
    assert not at.exception, at.exception
    at.radio(key="lab_baseline_kind").set_value("native").run()
    assert not at.exception, at.exception
    in_force = next(c.value for c in at.caption if c.value.startswith("In force"))
    assert in_force.startswith("In force: **Native**") and "variant (the sidebar's) window 8" in in_force


def test_the_fidelity_page_names_the_native_pattern_as_its_reference(tiny_gemma3_folder):
    at = app_with_model(str(tiny_gemma3_folder), TEXT)
    at.switch_page("pages/fidelity.py").run()
    assert not at.exception, at.exception
    assert any("Reference: this model's **native pattern**" in c.value for c in at.caption)
