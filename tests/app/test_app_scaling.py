"""AppTest of the Scaling page, driven through its keyed widgets with tiny lengths.

The configuration lives in plain session keys (the sidebar widgets write there); the tests set and read those keys
directly."""
import json

from apptools import open_page


def scaling_page():
    return open_page("scaling", "A short text.")


def charts(at):
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def measure_tiny(at, methods=None):
    at.select_slider(key="scaling_lengths").set_range(16, 32)
    if methods is not None:
        at.multiselect(key="scaling_methods").set_value(methods)
    at.button(key="scaling_run").click().run()
    assert not at.exception, at.exception
    return at


def test_empty_state_explains_the_button():
    at = scaling_page()
    assert any("Nothing measured yet" in i.value for i in at.info)
    assert not at.get("plotly_chart") and not at.dataframe


def test_measure_shows_charts_and_a_table_that_stay_after_a_page_change():
    at = measure_tiny(scaling_page())
    time_spec, memory_spec = charts(at)
    assert time_spec["layout"]["xaxis"]["type"] == "log" and time_spec["layout"]["yaxis"]["type"] == "log"
    names = [t["name"] for t in time_spec["data"]]
    assert names == ["lfviz Longformer (sidebar config)", "full attention (dense SDPA)",
                     "Hugging Face LongformerModel"]
    assert all(t["x"] == [16, 32] for t in time_spec["data"])
    assert memory_spec["layout"]["yaxis"]["type"] == "log"
    table = at.dataframe[0].value
    assert len(table) == 6 and set(table["tokens"]) == {16, 32} and (table["seconds"] > 0).all()
    assert at.get("download_button")

    at.switch_page("pages/document.py").run()
    at.switch_page("pages/scaling.py").run()
    assert not at.exception
    assert len(charts(at)) == 2 and len(at.dataframe[0].value) == 6  # kept, not re-measured
    assert at.select_slider(key="scaling_lengths").value == (16, 32)  # the choice is kept too


def test_a_new_window_is_flagged_and_changes_the_measurement():
    at = measure_tiny(scaling_page(), ["lfviz"])
    before = list(at.dataframe[0].value["scores_mb"])
    at.session_state["window"] = "8"
    at.run()
    assert any("changed since" in i.value for i in at.info)
    at.button(key="scaling_run").click().run()
    assert not at.exception
    after = list(at.dataframe[0].value["scores_mb"])
    assert after != before and all(a < b for a, b in zip(after, before))  # band 9 columns instead of 513
    assert not any("changed since" in i.value for i in at.info)
