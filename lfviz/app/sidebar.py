"""The shared sidebar: the one configuration every page uses (window, dilation, global tokens, layer, head), bound
to the plain session keys of `state`.

A typed value enters the configuration only when it is valid (for the model and the document); otherwise the
field keeps the typed text with its error right below it, the last valid configuration stays in force (so every
page keeps its figures) and the link never carries the invalid value."""
from __future__ import annotations

import hashlib

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from ..analysis.presets import remap_positions
from ..textspec import NATIVE, format_positions, parse_positions
from .cache import FIELDS, check_fields, config_in_force, current_runner, document_tokens, is_causal
from .layers import layer_type
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


MEMORY = 32  # (model, text, question) whose global tokens a switch back to that model restores


def _memory_key(key: tuple) -> tuple:
    model, document, question = key
    return model, hashlib.sha1(document.encode()).hexdigest(), question


def _page() -> str:
    """The page this run shows (st.navigation has chosen it before the sidebar is drawn)."""
    ctx = get_script_run_ctx()
    return getattr(ctx, "page_script_hash", "") if ctx is not None else ""


def _model_start(runner) -> tuple[str, str]:
    """The global tokens a model starts with on the current document (its runner's suggestion: a causal LM's
    first 4 tokens, its sinks; an encoder's first token, or a QA model's question), and why, in words."""
    ss = st.session_state
    start = format_positions(runner.suggest_global_tokens(ss["document"], ss.get("question")))
    why = ("a causal LM's sinks: its first tokens, which every later token keeps in view" if is_causal(runner) else
           "where this model usually puts global attention")
    return start, f"global tokens {start or 'none'} ({why})"


def _follow_model_window() -> None:
    """A model trained with a sliding window (Gemma 3, Mistral, ...) starts with its own pattern: the window field
    becomes "native" when such a model is loaded, unless the window was set in the same step (a link, a page, a
    test). Other models keep the window in force ("native" then means their own). The note stays on its page."""
    ss = st.session_state
    note = ss.get("_window_note")
    if note is not None and note[1] != _page():
        ss.pop("_window_note")
    runner = current_runner()
    if runner is None:
        return
    if ss.get("_window_model") != ss["model"]:
        chosen = (not ss.pop("_window_unset", True)) if "_window_model" not in ss else \
            ss["window"] != ss.get("_window_seen")
        if runner.trained_sparse and not chosen and ss["window"] != NATIVE:
            ss["window"] = NATIVE
            ss["_window_note"] = (f"{runner.model_id} was trained with sliding windows, so the window starts as "
                                  "'native': its own per-layer pattern. Edit it here or per layer on the Pattern "
                                  "page.", _page())
        ss["_window_model"] = ss["model"]
    ss["_window_seen"] = ss["window"]


def follow_document() -> None:
    """When the document, its question or the model changes, global tokens follow, with a note saying how:
    - the text changed (same tokens elsewhere): each global token follows its token to its new position, or is
      dropped;
    - the model changed to one that splits the text into other tokens (another tokenizer): old positions mean other
      tokens there, so the new model starts with its own global tokens (`_model_start`); so does a new session
      on a model whose global tokens neither the link nor anyone set;
    - global tokens set in the same step (a link, an import, a page that opens a document with its own): kept.
    The note stays on the page where the change happened, until another page is shown."""
    ss = st.session_state
    _follow_model_window()
    note = ss.get("_global_note")
    if note is not None and note[1] != _page():
        ss.pop("_global_note")  # seen where it happened: it does not follow the user to every page
    tokens = document_tokens()
    if tokens is None:
        return
    key = (ss["model"], ss["document"], ss.get("question"))
    anchor = ss.get("_global_anchor")
    text = None
    if anchor is None:
        if ss.pop("_global_unset", False):
            start, why = _model_start(current_runner())
            if start != ss["global"]:
                ss["global"], text = start, f"{current_runner().model_id} starts with {why}."
    elif anchor[0] != key and ss["global"] == anchor[2]:  # not set anew together with the change
        if key[0] != anchor[0][0] and tokens != anchor[1]:
            start, why = _model_start(current_runner())
            kept = ss.get("_global_memory", {}).get(_memory_key(key))
            if kept is not None:  # back to a model already used on this text: its global tokens as they were
                start, why = kept, f"the global tokens it had on this text: {kept or 'none'}"
            text = (f"The model changed: {current_runner().model_id} splits the text into other tokens, where the "
                    f"old positions ({ss['global'] or 'none'}) would be other words; it starts with {why}.")
            ss["global"] = start
        else:
            old = parse_positions(ss["global"])
            new, notes = remap_positions(old, anchor[1], tokens)
            if tuple(sorted(old)) != new:
                ss["global"] = format_positions(new)
            text = ("The text changed; global tokens followed it: " + "; ".join(notes[:8])
                    + (" ..." if len(notes) > 8 else "")) if notes else None
    if anchor is None or anchor[0] != key:
        ss["_global_note"] = (text, _page()) if text else None
    ss["_global_anchor"] = (key, tokens, ss["global"])
    memory = ss.setdefault("_global_memory", {})
    memory.pop(_memory_key(key), None)
    memory[_memory_key(key)] = ss["global"]  # the latest last: the oldest goes first
    while len(memory) > MEMORY:
        memory.pop(next(iter(memory)))


def sidebar() -> None:
    ss = st.session_state
    runner = current_runner()
    follow_document()
    with st.sidebar:
        st.markdown("### Configuration")
        for name in FIELDS:
            _field(name)
        if ss.get("_global_note"):
            st.info(ss["_global_note"][0])
        if ss.get("_window_note"):
            st.info(ss["_window_note"][0])
        if runner is not None:
            ss["layer"] = min(max(int(ss.get("layer", 0)), 0), runner.num_layers - 1)
            ss["head"] = min(max(int(ss.get("head", 0)), 0), runner.num_heads - 1)
            _synced(st.number_input, "layer", "Layer", 0, runner.num_layers - 1, step=1)
            _synced(st.number_input, "head", "Head", 0, runner.num_heads - 1, step=1)
            tokens, cfg_now = document_tokens(), config_in_force()[0]
            if tokens and cfg_now is not None:
                st.caption(layer_type(runner, cfg_now, len(tokens), int(ss["layer"])))
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
