"""AppTest of the Global-token lab, driven through its keyed widgets.

The configuration lives in plain session keys (the sidebar widgets write there); the tests set and read those keys
directly."""
from apptools import chart, open_page, values

DOC = "The contract ends on termination. The budget was approved by the board. " * 12


def lab():
    return open_page("global_lab", DOC, queries=["termination of the contract", "bread recipe"])


def variant_scores(at):
    spec = chart(at, "baseline vs variant")
    return spec["data"][1]["y"]


def test_presets_change_globals_and_predictions():
    at = lab()
    assert at.session_state["global"] == "0"
    before = variant_scores(at)
    at.selectbox(key="lab_preset").set_value("tokens matching a word")
    at.text_input(key="lab_pattern").set_value("budget")
    at.button(key="lab_replace").click().run()
    assert not at.exception
    positions = [int(x) for x in at.session_state["global"].split(",")]
    assert len(positions) == 12
    assert variant_scores(at) != before
    strip = chart(at, "Tokens by similarity")
    colors = values(strip["data"][0]["marker"]["color"])
    assert [i for i, c in enumerate(colors) if c == 1] == positions  # global tokens drawn in the global colour
    at.button(key="lab_clear").click().run()
    assert at.session_state["global"] == ""


def test_bad_regex_keeps_the_globals():
    at = lab()
    at.selectbox(key="lab_preset").set_value("tokens matching a regex")
    at.text_input(key="lab_pattern").set_value("(")
    at.button(key="lab_add").click().run()
    assert not at.exception and at.session_state["global"] == "0"
    assert any("not a valid regular expression" in c.value for c in at.caption)


def test_per_layer_window_and_dilation():
    at = lab()
    at.select_slider(key="lab_window_2").set_value(8)
    at.slider(key="lab_dil_5").set_value(2)
    at.multiselect(key="lab_heads_5").set_value([0, 3])
    at.button(key="lab_apply_layers").click().run()
    assert not at.exception
    assert at.session_state["window"] == "512,512,8,512,512,512"
    assert at.session_state["dilation"] == "1;1;1;1;1;2,1,1,2,1,1,1,1,1,1,1,1"
    layers = chart(at, "layer by layer")
    assert len(layers["data"][0]["y"]) == 6


def test_sweep_runs_and_plots():
    at = lab()
    at.slider(key="lab_sweep_points").set_value(3)
    at.button(key="lab_sweep_run").click().run()
    assert not at.exception
    spec = chart(at, "while sweeping")
    assert len(spec["data"][0]["x"]) == 3


def in_force(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith("In force"))


def test_baselines_are_explicit_and_the_default_follows_the_variant():
    at = lab()
    assert "Same window and dilation" in in_force(at) and "baseline window 512, dilation 1, global []" in in_force(at)
    at.session_state["window"] = "16"
    at.run()
    assert "baseline window 16, dilation 1, global []" in in_force(at)  # follows the variant, not frozen
    at.radio(key="lab_baseline_kind").set_value("full").run()
    n = len(chart(at, "Tokens by similarity")["data"][0]["text"])
    assert f"Full attention** - baseline window {2 * n}," in in_force(at)
    at.button(key="lab_set_baseline").click().run()
    at.session_state["window"] = "32"
    at.run()
    assert at.session_state["lab_baseline_kind"] == "pinned" and "baseline window 16, dilation 1, global [0]" in in_force(at)
    words = " ".join(c.value for c in at.caption)
    assert "cosine similarity between the document's embedding" in words and "TV distance (bars)" in words


def test_the_sweep_stays_open_with_its_results_after_a_preset():
    at = lab()
    at.session_state["global"] = "0, 9"
    at.run()
    at.slider(key="lab_sweep_points").set_value(3)
    at.selectbox(key="lab_sweep_moving").set_value(9)
    at.button(key="lab_sweep_run").click().run()
    spec = chart(at, "while sweeping")
    assert spec["layout"]["shapes"][0]["type"] == "line"  # the current configuration's score, for reference
    at.selectbox(key="lab_preset").set_value("first token")
    at.button(key="lab_add").click().run()
    assert not at.exception and chart(at, "while sweeping")
    box = next(e for e in at.get("expander") if "Sweep" in e.proto.label)
    assert box.proto.expanded
