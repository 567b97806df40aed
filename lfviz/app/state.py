"""Session state every page reads, and links: the document, the model key and the configuration live in plain
session keys, never only in widgets (Streamlit drops a widget's key on runs that do not render it): "model",
"document", "sample", "queries", "question", and the configuration "window", "dilation", "global" (text) and
"layer", "head" (ints). The URL carries the configuration, so a link reopens the same view.
"""
from __future__ import annotations

import hashlib

import streamlit as st

from ..samples import list_samples
from ..textspec import config_from_text

MODEL_CHOICES = {"embedded": "Embedded MiniLM, converted (4,096 tokens)",
                 "embedded-16k": "Embedded MiniLM, converted (16,384 tokens)"}
URL_KEYS = ("model", "sample", "window", "dilation", "global", "layer", "head")
MAX_UPLOAD_BYTES = 2_000_000  # text uploads; run exports may be up to MAX_EXPORT_MB
MAX_EXPORT_MB = 200


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


def document_key() -> str:
    return hashlib.sha1(st.session_state.get("document", "").encode()).hexdigest()[:12]
