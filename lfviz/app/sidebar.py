"""The shared sidebar: the one configuration every page uses (window, dilation, global tokens, layer, head), bound
to the plain session keys of `state`."""
from __future__ import annotations

import streamlit as st

from .cache import current_config, current_runner
from .state import sync_query_params


def _synced(widget, name: str, label: str, *args, **kwargs):
    """A sidebar widget bound to the plain session key `name`."""
    ss, key = st.session_state, f"sidebar_{name}"
    if ss.get(key) != ss[name]:
        ss[key] = ss[name]
    return widget(label, *args, key=key, on_change=lambda: ss.update({name: ss[key]}), **kwargs)


def sidebar() -> None:
    ss = st.session_state
    runner = current_runner()
    with st.sidebar:
        st.markdown("### Configuration")
        _synced(st.text_input, "window", "Window (two-sided, even; one per layer with commas)",
                help="HF convention: 512 means 256 neighbours on each side. '256,256,512,...' sets each layer.")
        _synced(st.text_input, "dilation", "Dilation (1 = none; per layer '1,1,2'; per head '1;1;2,2,...')",
                help="Every d-th neighbour: same number of keys, d times the span.")
        _synced(st.text_input, "global", "Global token positions", help="Comma-separated token positions, e.g. 0, 12")
        if runner is not None:
            ss["layer"] = min(max(int(ss.get("layer", 0)), 0), runner.num_layers - 1)
            ss["head"] = min(max(int(ss.get("head", 0)), 0), runner.num_heads - 1)
            _synced(st.number_input, "layer", "Layer", 0, runner.num_layers - 1, step=1)
            _synced(st.number_input, "head", "Head", 0, runner.num_heads - 1, step=1)
        cfg = current_config()
        if cfg is not None and cfg.uses_dilation and runner is not None and runner.converted:
            st.warning("Out of distribution: this model was never trained with dilation > 1.")
        for msg in ss.get("url_errors", []):
            st.warning(msg)
        if runner is not None:
            st.caption(f"Model: {runner.model_id} - {runner.num_layers} layers x {runner.num_heads} heads, "
                       f"up to {runner.max_tokens:,} tokens; runs on the {runner.device_description}")
    sync_query_params()
