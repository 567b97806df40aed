"""App-side glue, the one lfviz module that imports streamlit: cached model loading, cached runs, the shared
sidebar, and the state that every page reads (one AttentionConfig flows from here to every page).

State lives in plain session keys, never only in widgets (Streamlit drops a widget's key on runs that do not
render it): "model", "document", "sample", "queries", "question", and the configuration "window", "dilation",
"global" (text) and "layer", "head" (ints). The sidebar's widgets ("sidebar_<name>") copy into them on change;
pages may set them directly in callbacks, or through `request` from the page body.
"""
from __future__ import annotations

import hashlib
import json

import streamlit as st
import torch

from .config import AttentionConfig
from .loading import load_runner
from .runner import Runner
from .samples import list_samples
from .textspec import config_from_text, config_to_text

MODEL_CHOICES = {"embedded": "Embedded MiniLM, converted (4,096 tokens)",
                 "embedded-16k": "Embedded MiniLM, converted (16,384 tokens)"}
URL_KEYS = ("model", "sample", "window", "dilation", "global", "layer", "head")
MAX_UPLOAD_BYTES = 2_000_000  # text uploads; run exports may be up to MAX_EXPORT_MB
MAX_EXPORT_MB = 200


# -- routing ----------------------------------------------------------------------------------------------------
_ROUTED = "_routed_through_app"


def mark_routed() -> None:
    """Called by app.py just before it runs the page: this run went through app.py (state, sidebar, navigation)."""
    st.session_state[_ROUTED] = True


def ensure_app_routing() -> None:
    """Call first in every page. Streamlit (1.67) serves a request for /<page>, while no run of app.py has
    called st.navigation yet in this server process, through its legacy `pages/` folder discovery: the page runs
    without app.py (no state, no sidebar), so a shared link to a page would crash. Such a run lacks app.py's
    marker: clear the legacy flag and rerun, which goes through app.py and st.navigation for the same URL.
    The marker is per run (not the process-wide flag), so sessions starting at the same moment are safe."""
    if st.session_state.pop(_ROUTED, False):
        return
    try:
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
    except ImportError:  # pragma: no cover - a Streamlit without the legacy router
        pass
    st.rerun()


# -- cached resources ------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=3, show_spinner="Loading the model...")
def get_runner(model: str) -> Runner:
    """One shared runner per model key ("embedded", "embedded-16k", a folder or Hub id); on a GPU warmed up
    (kernels compiled) while the loading spinner shows."""
    runner = load_runner("embedded", max_tokens=16384) if model == "embedded-16k" else load_runner(model)
    if runner.device.type == "cuda":
        runner.warm_up()
    return runner


@st.cache_resource(max_entries=6, show_spinner=False)
def _cached_run(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None,
                capture: bool):
    runner = get_runner(model)
    config = AttentionConfig.from_dict(json.loads(config_json))
    # On a GPU the captures stay there: each figure reduces or slices what it shows on the device, then moves that.
    return runner.run(text, config=config, queries=list(queries), question=question, capture=capture,
                      capture_dtype=torch.float16, output_hidden_states=True,
                      keep_on_device=runner.device.type == "cuda")


def run_document(config: AttentionConfig | None = None, capture: bool = True, text: str | None = None):
    """RunResult of the current document under `config` (default: the sidebar's), cached; None with a message
    on the page when the input cannot be run."""
    runner = current_runner()
    config = config or current_config()
    text = st.session_state.get("document", "") if text is None else text
    if runner is None or config is None:
        return None
    if not text.strip():
        st.info("No document yet: pick a sample or paste text on the Document page.")
        return None
    try:
        with st.spinner("Running the model..."):
            return _cached_run(st.session_state["model"], text, json.dumps(config.to_dict()),
                               tuple(st.session_state.get("queries", ())), st.session_state.get("question"), capture)
    except ValueError as e:
        st.error(f"Cannot run this configuration: {e}")
        return None
    except torch.cuda.OutOfMemoryError:
        _cached_run.clear()  # drop cached captures so the memory can be reused
        torch.cuda.empty_cache()
        st.error("The GPU ran out of memory for this run. Shorten the document, use a smaller window or fewer "
                 "global tokens; the previous settings still work.")
        return None


# -- state -----------------------------------------------------------------------------------------------------
def _default_sample():
    samples = list_samples()
    return samples[0] if samples else None


def use_sample(sample_id: str) -> None:
    for s in list_samples():
        if s.id == sample_id:
            st.session_state.update(sample=s.id, document=s.text, queries=list(s.queries), question=s.question)
            return
    st.session_state["url_errors"].append(f"unknown sample {sample_id!r} in the link; kept the current document")


def init_state() -> None:
    """Defaults, then the link's query parameters (once per session), then pending changes from pages."""
    ss = st.session_state
    if "_initialised" not in ss:
        ss["_initialised"] = True
        ss["url_errors"] = []
        first = _default_sample()
        defaults = dict(model="embedded", sample=first.id if first else "custom", document=first.text if first else "",
                        queries=list(first.queries) if first else [], question=first.question if first else None,
                        window="512", dilation="1", layer=0, head=0)
        defaults["global"] = "0"
        for key, value in defaults.items():
            ss.setdefault(key, value)  # values already set (e.g. by a test) win
        _apply_query_params()


def _apply_query_params() -> None:
    qp, ss = st.query_params, st.session_state
    model = qp.get("model")
    if model:
        if model in MODEL_CHOICES:
            ss["model"] = model
        else:
            ss["url_errors"].append(f"the link's model {model[:80]!r} is not one the app can open from a link; "
                                    f"using the embedded model")
    if qp.get("sample"):
        use_sample(qp["sample"])
    fields = {k: qp.get(k, ss[k]) for k in ("window", "dilation", "global")}
    try:
        config_from_text(fields["window"], fields["dilation"], fields["global"])
        ss.update(fields)
    except ValueError as e:
        ss["url_errors"].append(f"the link's configuration was not used: {e}")
    for key in ("layer", "head"):
        if key in qp:
            try:
                ss[key] = max(0, int(qp[key]))
            except ValueError:
                ss["url_errors"].append(f"the link's {key} {qp[key][:20]!r} is not a number; using {ss[key]}")


def request(**changes) -> None:
    """Change configuration values from a page body (e.g. make a clicked token global) and rerun, so the
    sidebar, drawn before the page, shows them too. In callbacks, set st.session_state[...] directly."""
    st.session_state.update(changes)
    st.rerun()


def sync_query_params() -> None:
    ss = st.session_state
    values = {"model": ss["model"] if ss["model"] in MODEL_CHOICES else None,
              "sample": ss["sample"] if ss["sample"] != "custom" else None,
              "window": ss["window"], "dilation": ss["dilation"], "global": ss["global"],
              "layer": str(ss["layer"]), "head": str(ss["head"])}
    for k, v in values.items():
        if v is None:
            st.query_params.pop(k, None)
        elif st.query_params.get(k) != v:
            st.query_params[k] = v


def current_runner() -> Runner | None:
    try:
        return get_runner(st.session_state["model"])
    except ValueError as e:
        st.error(f"Cannot load model {st.session_state['model']!r}: {e}")
        return None


def current_config() -> AttentionConfig | None:
    """The sidebar's configuration, checked against the model; None (with the error shown) if invalid."""
    ss = st.session_state
    try:
        cfg = config_from_text(ss["window"], ss["dilation"], ss["global"])
        runner = current_runner()
        if runner is not None:
            cfg.resolve(runner.num_layers, runner.num_heads)
        return cfg
    except ValueError as e:
        st.error(f"Configuration: {e}")
        return None


def document_key() -> str:
    return hashlib.sha1(st.session_state.get("document", "").encode()).hexdigest()[:12]


# -- the shared sidebar ----------------------------------------------------------------------------------------
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
