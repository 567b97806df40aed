"""The Pattern page's layers on a sliding-window LLM: a tiny random Gemma 3 folder (layers 2 and 5 full, the others
slide with S = 5 keys) loaded as the app's model. It starts with its native pattern ('native' in the window field,
with a note), the strip shows which layers slide, and the per-layer edits change the sidebar's window."""
from apptools import app_with_model, chart

SAMPLE_TEXT = "The keeper lit the lamp at dusk and logged the passing ships. " * 6


def pattern_page(folder):
    at = app_with_model(str(folder), SAMPLE_TEXT)  # a folder, as the model field sets it on a local app
    assert at.session_state["window"] == "native"  # a model trained with sliding windows starts with its own
    assert any("trained with sliding windows" in i.value for i in at.sidebar.info)
    at.switch_page("pages/pattern.py").run()
    assert not at.exception, at.exception
    return at


def test_a_sliding_window_model_starts_native_and_its_layers_are_edited(tiny_gemma3_folder):
    at = pattern_page(tiny_gemma3_folder)
    assert any(c.value.startswith("Layer 0: sliding, 5 keys (as native)") for c in at.sidebar.caption)
    strip = chart(at, "Layers:")
    assert "2 see the whole text" in strip["layout"]["title"]["text"]
    assert at.multiselect(key="layers_pick").value == [2, 5]  # the full layers, ready to be made to slide
    at.button(key="layers_slide").click().run()
    assert not at.exception and at.session_state["window"] == "8"  # every layer now slides alike
    assert "0 see the whole text" in chart(at, "Layers:")["layout"]["title"]["text"]
    assert "2 changed from native" in chart(at, "Layers:")["layout"]["title"]["text"]
    at.number_input(key="layers_window").set_value(16).run()
    at.button(key="layers_widen").click().run()
    assert at.session_state["window"] == "16"
    at.button(key="layers_sinks").click().run()
    assert at.session_state["global"] == "0, 1, 2, 3"
    at.button(key="layers_native").click().run()
    assert at.session_state["window"] == "native" and not at.exception


def test_the_experiment_measures_each_full_layer_made_to_slide(tiny_gemma3_folder):
    at = pattern_page(tiny_gemma3_folder)
    at.button(key="ablation_run").click().run()
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "run" in d.value.columns)
    assert list(table["run"]) == ["native", "layer 2 slides", "layer 5 slides", "layers 2, 5 slide"]
    assert table["x native (text)"].iloc[0] == 1.0
    assert chart(at, "Loss per token")
