"""The shared sidebar: the one configuration every page uses (window, dilation, global tokens, layer, head), bound
to the plain session keys of `state`.

A typed value enters the configuration only when it is valid (for the model and the document); otherwise the
field keeps the typed text with its error right below it, the last valid configuration stays in force (so every
page keeps its figures) and the link never carries the invalid value."""
from __future__ import annotations

import streamlit as st

from ..analysis.presets import remap_positions
from ..textspec import format_positions, parse_positions
from .cache import FIELDS, check_fields, config_in_force, current_runner, document_tokens, is_causal
from .state import sync_query_params

LABELS = {
    "window": ("Window (two-sided, even; one per layer with commas)",
               "HF convention: 512 means 256 neighbours on each side. '256,256,512,...' sets each layer."),
    "dilation": ("Dilation (1 = none; per layer '1,1,2'; per head '1;1;2,2,...')",
                 "Every d-th neighbour: same number of keys, d times the span."),
    "global": ("Global token positions", "Comma-separated token positions, e.g. 0, 12"),
}


def _synced(widget, name: str, label: str, *args, **kwargs):
    """A sidebar widget bound to the plain session key `name`."""
    ss, key = st.session_state, f"sidebar_{name}"
    if ss.get(key) != ss[name]:
        ss[key] = ss[name]
    return widget(label, *args, key=key, on_change=lambda: ss.update({name: ss[key]}), **kwargs)


def _typed(name: str) -> None:
    """on_change of a configuration field: take the typed value if the whole configuration is then valid."""
    ss = st.session_state
    typed = ss[f"sidebar_{name}"]
    errors = ss.setdefault("_field_errors", {})
    try:
        check_fields({**{k: ss[k] for k in FIELDS}, name: typed})
    except ValueError as e:
        errors[name] = (typed, str(e), ss[name])  # shown under the field until fixed or replaced from elsewhere
        return
    errors.pop(name, None)
    ss[name] = typed


def _field(name: str) -> None:
    """A configuration text field with its own error below it."""
    ss, key = st.session_state, f"sidebar_{name}"
    errors = ss.setdefault("_field_errors", {})
    if name in errors and errors[name][2] != ss[name]:  # a page or a link set a new value meanwhile
        errors.pop(name)
    if name not in errors and ss.get(key) != ss[name]:
        ss[key] = ss[name]
    label, help_ = LABELS[name]
    if name == "window" and is_causal(current_runner()):
        label, help_ = ("Window (even; a token sees window/2 previous tokens; one per layer with commas)",
                        "A causal model: 256 means each token sees itself and the 128 tokens before it (plus the "
                        "global tokens before it, its sinks). '256,256,512,...' sets each layer.")
    st.text_input(label, key=key, help=help_, on_change=_typed, args=(name,))
    if name in errors:
        st.error(f"{errors[name][1]}. Still in force: {ss[name]!r}.")


def follow_document() -> None:
    """When the document (or its question, or the model's tokenizer) changes, global tokens follow their tokens
    to their new positions, or are dropped, with a note that says which."""
    ss = st.session_state
    tokens = document_tokens()
    if tokens is None:
        return
    key = (ss["model"], ss["document"], ss.get("question"))
    anchor = ss.get("_global_anchor")
    if anchor is not None and anchor[0] != key:
        old = parse_positions(ss["global"])
        new, notes = remap_positions(old, anchor[1], tokens)
        if tuple(sorted(old)) != new:
            ss["global"] = format_positions(new)
        ss["_global_note"] = ("The text changed; global tokens followed it: " + "; ".join(notes[:8])
                              + (" ..." if len(notes) > 8 else "")) if notes else None
    ss["_global_anchor"] = (key, tokens)


def sidebar() -> None:
    ss = st.session_state
    runner = current_runner()
    follow_document()
    with st.sidebar:
        st.markdown("### Configuration")
        for name in FIELDS:
            _field(name)
        if ss.get("_global_note"):
            st.info(ss["_global_note"])
        if runner is not None:
            ss["layer"] = min(max(int(ss.get("layer", 0)), 0), runner.num_layers - 1)
            ss["head"] = min(max(int(ss.get("head", 0)), 0), runner.num_heads - 1)
            _synced(st.number_input, "layer", "Layer", 0, runner.num_layers - 1, step=1)
            _synced(st.number_input, "head", "Head", 0, runner.num_heads - 1, step=1)
        cfg, problem = config_in_force()
        if problem:
            st.error(f"Configuration not used: {problem}." + (" The last valid one stays in force." if cfg else ""))
        if cfg is not None and cfg.uses_dilation and runner is not None and runner.converted:
            st.warning("Out of distribution: this model was never trained with dilation > 1.")
        for msg in ss.get("url_errors", []):
            st.warning(msg)
        if runner is not None:
            st.caption(f"Model: {runner.model_id} - {runner.num_layers} layers x {runner.num_heads} heads, "
                       f"up to {runner.max_tokens:,} tokens; runs on the {runner.device_description}")
    sync_query_params()
