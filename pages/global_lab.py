"""Global-token lab: place global tokens (click, presets), set window/dilation per layer, and see what changes."""
import streamlit as st

from lfviz.app import cache, lab, routing

routing.ensure_app_routing()
ss = st.session_state
st.title("Global-token lab")
st.caption("Click a token, or drag a box over several, to make them global or local again; use presets; change window and "
           "dilation per layer. The variant is the sidebar's configuration, compared with a baseline you choose.")

runner, cfg = cache.current_runner(), cache.current_config()
if runner is None or cfg is None:
    st.stop()
variant = cache.run_document(cfg)
if variant is None:
    st.stop()
baseline_cfg, baseline_kind = lab.baseline_config(cfg, variant.n, runner)
baseline = cache.run_document(baseline_cfg)

lab.global_token_picker(runner, variant, cfg)
specs = cfg.resolve(runner.num_layers, runner.num_heads)
lab.layer_controls(runner, specs)

st.subheader("Baseline vs variant")
lab.baseline_controls(cfg, baseline_cfg, baseline_kind)
if baseline is None:
    st.stop()
if runner.converted and all(spec.one_sided * min(spec.dilation) >= variant.n - 1 for spec in specs):
    st.info("Every layer's window covers the whole document, so global tokens change nothing here: "
            + ("every token already sees every earlier one. " if cache.is_causal(runner) else
               "this converted model's global projections are copies of its local ones. ")
            + "Narrow the window (sidebar or 'Window and dilation per layer') to see what global tokens do.")
lab.comparison(baseline, variant)
if cache.is_causal(runner):
    lab.window_cost_panel(variant)
lab.sweep_panel(runner, variant, cfg)
