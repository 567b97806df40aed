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
                 "embedded-16k": "Embedded MiniLM, converted (16,384 tokens)",
                 "smollm2": "SmolLM2-135M-Instruct: a causal language model, 4-bit (8,192 tokens)",
                 "gemma3-270m": "Gemma 3 270M: trained with sliding windows, 5 sliding : 1 full layer (4-bit)"}
URL_KEYS = ("model", "sample", "window", "dilation", "global", "layer", "head", "queries", "question", "tab")
LESSON_URL_KEYS = ("step", "present")  # the Lesson page's own (lfviz/app/lesson.py): left alone by sync_query_params
CUSTOM_TEXT_NOTE = ("The sender's link was made on their own text, which a link cannot carry (only samples travel "
                    "in links): this is the default sample with their settings, so global token positions may land on "
                    "other tokens. Ask the sender for an export (Document page, 'Export this run') and open it there.")
MAX_UPLOAD_BYTES = 2_000_000  # text uploads; run exports may be up to MAX_EXPORT_MB
MAX_EXPORT_MB = 200
ATTENTION_TABS = ("Band (whole document)", "Dense zoom", "Global tokens", "Received, over the text",
                  "Head overview")
DEFAULT_TAB = ATTENTION_TABS[0]


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
        # nobody chose global tokens (neither a link nor a test): the model's own start (the sidebar sets it)
        ss["_global_unset"] = "global" not in ss and "global" not in st.query_params
        ss["_window_unset"] = "window" not in ss and "window" not in st.query_params  # likewise the window
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
    if qp.get("sample") == "custom":
        ss["url_errors"].append(CUSTOM_TEXT_NOTE)
    elif qp.get("sample"):
        use_sample(qp["sample"])
    if "queries" in qp:  # after the sample, whose own queries and question it replaces
        ss["queries"] = [q.strip() for q in qp["queries"].splitlines() if q.strip()][:50]
    if "question" in qp:
        ss["question"] = qp["question"].strip()[:2000] or None
    if qp.get("tab") in ATTENTION_TABS:
        ss["attention_tab"] = qp["tab"]
    elif qp.get("tab"):
        ss["url_errors"].append(f"the link's tab {qp['tab'][:40]!r} does not exist; showing the first one")
    fields = {k: qp.get(k, ss[k]) for k in ("window", "dilation", "global")}
    try:
        config_from_text(fields["window"], fields["dilation"], fields["global"], native=(2,))  # the syntax only
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


def _sample_defaults(sample_id: str) -> tuple[list[str], str | None]:
    s = next((s for s in list_samples() if s.id == sample_id), None)
    return (list(s.queries), s.question) if s else ([], None)


def sync_query_params() -> None:
    """The URL carries what the user sees: model, sample, the configuration in force (never an invalid value
    still being typed), layer, head, the Attention page's tab, and queries and question where they differ from
    the sample's own. Pasted text cannot travel: the link then says sample=custom."""
    ss = st.session_state
    good = ss.get("_good_fields") or {k: ss[k] for k in ("window", "dilation", "global")}
    queries, question = _sample_defaults(ss["sample"])
    tab = ss.get("attention_tab")
    values = {"model": ss["model"] if ss["model"] in MODEL_CHOICES else None, "sample": ss["sample"],
              "window": good["window"], "dilation": good["dilation"], "global": good["global"],
              "layer": str(ss["layer"]), "head": str(ss["head"]),
              "queries": None if ss.get("queries", []) == queries else "\n".join(ss.get("queries", [])),
              "question": None if ss.get("question") == question else (ss.get("question") or ""),
              "tab": tab if tab and tab != DEFAULT_TAB else None}
    for k, v in values.items():
        if v is None:
            st.query_params.pop(k, None)
        elif st.query_params.get(k) != v:
            st.query_params[k] = v


def document_key() -> str:
    return hashlib.sha1(st.session_state.get("document", "").encode()).hexdigest()[:12]
