"""AppTest of the Fidelity page: placements measured against full attention side by side, the per-layer curve, what
reaches a token, and the advisor's suggest / apply / keep, driven through keyed widgets."""
import numpy as np
import pytest

from apptools import chart, open_page, values

DOC = "The board approved the budget for the new bridge. The mayor objected to the cost. " * 12  # ~200 tokens


def table(at, column="placement"):
    """The table with that column: "placement" (side by side), "recommended" (advisor vs presets), "pick"."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def rows(at) -> dict:
    return {r["placement"]: r for r in table(at).to_dict("records")}


def test_a_window_covering_the_text_is_full_attention():
    at = open_page("fidelity", DOC, window="1024")
    at.session_state["global"] = ""
    at.run()
    assert not at.exception and not at.error
    assert rows(at)["sidebar (in force)"]["distance"] == pytest.approx(0, abs=1e-5)
    curve = chart(at, "builds up")
    assert [t["name"] for t in curve["data"]] == ["sidebar (in force)", "no global tokens"]
    assert np.abs(values(curve["data"][0]["y"])).max() <= 1e-5 and len(values(curve["data"][0]["y"])) == 7


def test_placements_side_by_side_keep_and_use():
    at = open_page("fidelity", DOC, window="16")
    named = rows(at)
    assert named["sidebar (in force)"]["distance"] < named["no global tokens"]["distance"]  # [CLS] global helps
    at.session_state["global"] = "0, 50, 100, 150"
    at.run()
    at.text_input(key="fid_name").set_value("every 50")
    at.button(key="fid_keep").click().run()
    named = rows(at)
    assert named["every 50"]["positions"] == "0, 50, 100, 150"
    assert named["every 50"]["distance"] == named["sidebar (in force)"]["distance"]
    assert len(chart(at, "builds up")["data"]) == 3  # one line per placement
    at.session_state["global"] = "0"
    at.run()
    assert rows(at)["every 50"]["distance"] != rows(at)["sidebar (in force)"]["distance"]
    at.selectbox(key="fid_use").set_value("every 50")
    at.button(key="fid_use_btn").click().run()
    assert at.session_state["global"] == "0, 50, 100, 150" and not at.exception


def test_suggest_then_apply_makes_the_recommendation_the_sidebars():
    at = open_page("fidelity", DOC, window="16")
    at.number_input(key="fid_k").set_value(3)
    at.button(key="fid_suggest").click().run()
    assert not at.exception and not at.error
    compare = table(at, "recommended")
    assert compare["recommended"].sum() == 1 and compare["gap"].is_monotonic_increasing
    best = compare[compare["recommended"]].iloc[0]
    picks = table(at, "pick")
    assert 1 <= len(picks) <= 3 and (picks["gain"] >= 0).all()
    at.button(key="fid_apply").click().run()
    assert at.session_state["global"] == best["positions"]
    named = rows(at)  # the app's own run of the applied placement gives the advisor's number back
    assert named["sidebar (in force)"]["distance"] == pytest.approx(best["gap"], abs=1e-6)
    assert named["advisor, k = 3"]["positions"] == best["positions"]
    at.session_state["window"] = "32"
    at.run()
    assert any("suggest again" in i.value for i in at.info)  # an old suggestion is not shown as current


def test_one_prediction_as_the_objective():
    at = open_page("fidelity", DOC, window="16", queries=["the cost of the bridge", "a bread recipe"])
    predictions = next(d.value for d in at.dataframe if "full attention" in d.value.columns)
    assert set(predictions["label"]) == {"the cost of the bridge", "a bread recipe"}
    assert ((predictions["change"] - (predictions["sidebar"] - predictions["full attention"])).abs() < 2e-4).all()
    at.radio(key="fid_objective").set_value("prediction").run()
    at.selectbox(key="fid_label").set_value("a bread recipe").run()
    assert not at.exception and any("one prediction's score" in c.value for c in at.caption)
    assert all(r["distance"] >= 0 for r in rows(at).values())


def test_what_reaches_a_token():
    at = open_page("fidelity", DOC, window="16")
    at.session_state["global"] = ""
    at.run()
    at.number_input(key="fid_token").set_value(100).run()
    reach = chart(at, "What reaches token 100")
    shown = {t["name"] for t in reach["data"] if t.get("showlegend", True)}
    assert shown == {"current configuration", "full attention"}
    assert any("**current configuration**: 97 of" in m.value for m in at.markdown)  # 8 per side, 6 layers: 100 +- 48


def test_the_advisor_shows_picks_as_they_come_and_a_stop_keeps_them(monkeypatch):
    """The Stop button's click sets `_fid_stop`, which the search reads before each run. Here the click is made by
    the first pick's arrival (AppTest cannot click during a run): the page then shows the partial advice, stopped."""
    from lfviz.analysis import advisor

    real = advisor.iter_advice

    def stop_after_the_first_pick(*args, **kwargs):
        import streamlit as st
        for advice, pick, status in real(*args, **kwargs):
            if pick is not None:
                st.session_state["_fid_stop"] = True  # what the Stop button's on_click does
            yield advice, pick, status

    monkeypatch.setattr(advisor, "iter_advice", stop_after_the_first_pick)
    at = open_page("fidelity", DOC, window="16")
    at.number_input(key="fid_k").set_value(6)
    at.button(key="fid_suggest").click().run()
    assert not at.exception and not at.error
    assert any("Stopped at 1 of 6 picks" in w.value for w in at.warning)
    picks = table(at, "pick")
    assert len(picks) == 1
    compare = table(at, "recommended")  # usable: the recommendation from what was measured, and apply works
    best = compare[compare["recommended"]].iloc[0]
    at.button(key="fid_apply").click().run()
    assert at.session_state["global"] == best["positions"]
    assert rows(at)["sidebar (in force)"]["distance"] == pytest.approx(best["gap"], abs=1e-6)
