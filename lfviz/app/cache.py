"""Cached models and runs, shared by every page and tab: the runner of a model key, a document's run under a
configuration, and the sidebar's configuration checked against the model."""
from __future__ import annotations

import json

import streamlit as st
import torch

from ..config import AttentionConfig
from ..model.runner import Runner
from ..textspec import config_from_text
from . import serving


@st.cache_resource(max_entries=3, show_spinner="Loading the model...")
def get_runner(model: str) -> Runner:
    """One shared runner per model key ("embedded", "embedded-16k", a folder or Hub id); on a GPU warmed up
    (kernels compiled) while the loading spinner shows."""
    runner = serving.load_model(model)  # the owner's rules: which folders, whether the Hub may be reached
    if runner.device.type == "cuda":
        runner.warm_up()
    return runner


def _run(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None, capture: bool):
    runner = get_runner(model)
    config = AttentionConfig.from_dict(json.loads(config_json))
    # On a GPU the captures stay there: each figure reduces or slices what it shows on the device, then moves that.
    return runner.run(text, config=config, queries=list(queries), question=question, capture=capture,
                      capture_dtype=torch.float16, output_hidden_states=True,
                      keep_on_device=runner.device.type == "cuda")


# Captured runs hold every layer's attention (hundreds of MB at 4k tokens): few of them. Runs without capture hold
# hidden states only (tens of MB): the Fidelity page compares several placements, so more of those.
@st.cache_resource(max_entries=6, show_spinner=False)
def _cached_run(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None,
                capture: bool):
    return _run(model, text, config_json, queries, question, capture)


@st.cache_resource(max_entries=16, show_spinner=False)
def _cached_plain_run(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None):
    return _run(model, text, config_json, queries, question, False)


def _run_key(model: str, text: str, config: AttentionConfig, queries, question) -> str:
    return json.dumps([model, text, config.to_dict(), list(queries), question])


def show_saved_run(res) -> None:
    """Serve `res` (an opened export) for the request it answers, instead of running the model again."""
    st.session_state["_saved_run"] = (_run_key(res.model_id, res.text, res.config, res.queries, res.question), res)


def run_document(config: AttentionConfig | None = None, capture: bool = True, text: str | None = None):
    """RunResult of the current document under `config` (default: the sidebar's), cached; None with a message
    on the page when the input cannot be run. An opened export answers the request it was saved for, as saved
    (a note says so)."""
    ss = st.session_state
    runner = current_runner()
    config = config or current_config()
    text = ss.get("document", "") if text is None else text
    if runner is None or config is None:
        return None
    if not text.strip():
        st.info("No document yet: pick a sample or paste text on the Document page.")
        return None
    saved = ss.get("_saved_run")
    if saved and saved[0] == _run_key(ss["model"], text, config, ss.get("queries", ()), ss.get("question")):
        st.caption(f"Showing the saved run from the export (layers {saved[1].capture.captured_layers}): the "
                   "model was not run again.")
        return saved[1]
    try:
        args = (ss["model"], text, json.dumps(config.to_dict()), tuple(ss.get("queries", ())), ss.get("question"))
        with st.spinner("Running the model..."):
            return _cached_run(*args, capture) if capture else _cached_plain_run(*args)
    except ValueError as e:
        st.error(f"Cannot run this configuration: {e}")
        return None
    except torch.cuda.OutOfMemoryError:
        _cached_run.clear()  # drop cached captures so the memory can be reused
        _cached_plain_run.clear()
        torch.cuda.empty_cache()
        st.error("The GPU ran out of memory for this run. Shorten the document, use a smaller window or fewer "
                 "global tokens; the previous settings still work.")
        return None


def current_runner() -> Runner | None:
    try:
        return get_runner(st.session_state["model"])
    except ValueError as e:
        st.error(f"Cannot load model {st.session_state['model']!r}: {e}")
        return None


def is_causal(runner) -> bool:
    """A causal language model (keys at or before each query; the window counts previous tokens)."""
    return getattr(runner, "task", None) == "causal-lm"


FIELDS = ("window", "dilation", "global")  # the configuration's text fields, as the sidebar holds them


@st.cache_data(max_entries=16, show_spinner=False)
def tokenized(model: str, text: str, question: str | None) -> dict:
    """tokens, offsets, question_tokens and warnings of a document for a model (cached: pages and the sidebar
    need them on every run)."""
    t = get_runner(model).tokenize(text, question)
    return {"tokens": t.tokens, "offsets": t.offsets, "question_tokens": t.question_tokens, "warnings": t.warnings}


def document_tokens() -> list[str] | None:
    """The current document's tokens under the current model, or None when there is none (or no model)."""
    ss = st.session_state
    if current_runner() is None or not ss.get("document", "").strip():
        return None
    try:
        return tokenized(ss["model"], ss["document"], ss.get("question"))["tokens"]
    except ValueError:
        return None


def check_fields(fields: dict[str, str]) -> AttentionConfig:
    """The configuration the three text fields describe, checked against the model and the document's length;
    ValueError naming what to fix."""
    cfg = config_from_text(fields["window"], fields["dilation"], fields["global"])
    runner = current_runner()
    if runner is not None:
        cfg.resolve(runner.num_layers, runner.num_heads)
        tokens = document_tokens()
        if tokens is not None:
            cfg.check_globals(len(tokens))
    return cfg


def config_in_force() -> tuple[AttentionConfig | None, str | None]:
    """(the configuration in force, why the fields as they stand cannot be used or None). In force: the
    sidebar's fields when they are valid, else the last valid ones (the sidebar shows the error once, next to the
    field that caused it); None only before anything was valid."""
    ss = st.session_state
    try:
        cfg = check_fields({k: ss[k] for k in FIELDS})
    except ValueError as e:
        good = ss.get("_good_fields")
        return (None if good is None else config_from_text(*(good[k] for k in FIELDS))), str(e)
    ss["_good_fields"] = {k: ss[k] for k in FIELDS}
    return cfg, None


def current_config() -> AttentionConfig | None:
    """The configuration in force (see `config_in_force`)."""
    return config_in_force()[0]
