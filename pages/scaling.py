"""Scaling: time and memory of one forward pass vs sequence length, measured live on this machine, for lfviz's
Longformer attention (the sidebar's configuration), full attention and Hugging Face's LongformerModel."""
import streamlit as st

from lfviz.app import cache, routing, scaling

routing.ensure_app_routing()
ss = st.session_state
st.title("Scaling: time and memory vs sequence length")
st.markdown(
    "Longformer's promise is cost that grows **linearly** with the length, where full self-attention grows with "
    "its **square**. This page checks it on this machine: it runs one forward pass of the current model on "
    "random token ids of each length, with lfviz's Longformer attention (the sidebar's window, dilation and "
    "global tokens), with full attention on the same weights, and with Hugging Face's own `LongformerModel`."
)

runner = cache.current_runner()
config = cache.current_config()
if runner is None or config is None:
    st.stop()
if cache.is_causal(runner):
    st.info(f"{runner.model_id} is a causal language model: this page measures encoders (lfviz's encoder, dense "
            "SDPA and Hugging Face's LongformerModel on the same weights). For SmolLM2 against Hugging Face, see "
            "bench/causal_bench.py and bench/README.md. Pick an embedded model on the Document page to measure here.")
    st.stop()
lengths, methods, repeats, device = scaling.controls(runner)

# A callback records the click, so a rerun before the body runs (routing) cannot lose it.
st.button("Measure", key="scaling_run", type="primary", disabled=not methods,
          on_click=lambda: ss.update(_scaling_requested=True))
if ss.pop("_scaling_requested", False) and methods:
    scaling.measure(runner, config, lengths, methods, repeats, device)
elif not methods:
    st.warning("Pick at least one method to measure.")

if not ss.get("scaling_results"):
    st.info("Nothing measured yet. **Measure** runs one forward pass per method and length (random token ids, no "
            "attention capture) and records the wall time and the memory it took, then plots both against the "
            "length on log-log axes. The results stay here while you visit other pages.")
    st.stop()
scaling.results(runner, ss["scaling_results"])
