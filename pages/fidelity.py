"""Fidelity: what the window loses on this document, and where global tokens should go. Named placements of
global tokens measured against the same weights under full attention, the blind-spot map over the text, what
reaches a clicked token, and the placement advisor."""
import streamlit as st

from lfviz.app import cache, fidelity, routing

routing.ensure_app_routing()
st.title("Fidelity: what the window loses, and where global tokens should go")
st.caption("Every placement of global tokens below runs the document with the sidebar's window and dilation and is "
           "measured against the same weights under full attention: 0 = exactly what full attention computes.")

runner, cfg = cache.current_runner(), cache.current_config()
if runner is None or cfg is None:
    st.stop()
result = cache.run_document(cfg, capture=False)
ref = fidelity.reference(cfg) if result is not None else None
if ref is None:
    st.stop()
full = ref[0]
fidelity.reference_note(runner)
objective, label = fidelity.objective_controls(full)

st.subheader("Placements side by side")
named = fidelity.placements(cfg, result.n)
measured = fidelity.measure_all(cfg, full, named, objective, label)
if fidelity.SIDEBAR not in measured or fidelity.NONE not in measured:
    st.stop()
fidelity.placement_table(named, measured, objective)
fidelity.prediction_changes(measured[fidelity.SIDEBAR])
fidelity.keep_controls(cfg, named)

st.subheader("Blind spots: where the sidebar's placement drifts from full attention")
clicked = fidelity.blind_spot_map(result, measured[fidelity.SIDEBAR], measured[fidelity.NONE], cfg.global_tokens)
st.subheader("What can reach a token")
fidelity.reach_view(runner, cfg, result.n, clicked)

st.subheader("Suggest global tokens")
fidelity.advisor_panel(runner, cfg, ref, objective, label, result.n)
