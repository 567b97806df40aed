"""Cached models and runs, shared by every page and tab, within the server's memory budget: the runner of a model
key, a document's run under a configuration, and the sidebar's configuration checked against the model.

Memory budget: the server process aims to stay under `LFVIZ_MEMORY_BUDGET_GB` GiB of resident memory (default 6).
Models and runs live in one process-wide cache sized in bytes (`lfviz.runcache.ByteLRU`): what the server held
when the cache was made (Python, Streamlit, torch) and a margin come off the budget, the rest holds models and
runs, least recently used evicted first. Before a run, its peak is estimated (`peak_memory.run_bytes`) and added
to what the process grew by outside the cache (its RSS now); a run that cannot fit even with everything else
evicted is refused with a message that says what to change.
"""
from __future__ import annotations

import json
import os
import threading
import warnings

import streamlit as st
import torch

from ..analysis.peak_memory import RunBytes, _rss_bytes, gib, longest_fitting, run_bytes, trim
from ..config import AttentionConfig
from ..model.runner import Runner
from ..runcache import ByteLRU, nbytes
from ..textspec import config_from_text
from . import serving

BUDGET_ENV = "LFVIZ_MEMORY_BUDGET_GB"
DEFAULT_BUDGET_GB = 6.0
MARGIN = 0.05  # of the budget, kept free: allocator slack, Streamlit's own caches and messages
# peak while a model loads (the first load dequantises the GGUF: Gemma 3 270M peaks at 3 GB; MiniLM is converted);
# other models 1 GB
LOAD_BYTES = {"embedded": 300_000_000, "embedded-16k": 350_000_000, "smollm2": 1_300_000_000,
              "gemma3-270m": 3_200_000_000}
_STORE: ByteLRU | None = None
_STORE_LOCK = threading.Lock()


class MemoryBudgetError(ValueError):
    """An action that would take the server past its memory budget; the message says what to change."""


def budget_gb() -> float:
    """The budget in GiB from `LFVIZ_MEMORY_BUDGET_GB` (default 6); a bad value is reported and the default used."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET_GB
    try:
        value = float(raw)
        if value > 0:
            return value
    except ValueError:
        pass
    warnings.warn(f"{BUDGET_ENV}={raw!r} is not a positive number of GiB (e.g. 6 or 2.5): using "
                  f"{DEFAULT_BUDGET_GB:g}", stacklevel=2)
    return DEFAULT_BUDGET_GB


def store() -> ByteLRU:
    """The process-wide cache of models and runs (made on first use: the budget minus what the server holds then)."""
    global _STORE
    with _STORE_LOCK:
        if _STORE is None:
            _STORE = _make_store(int(budget_gb() * 2**30))
        return _STORE


def _make_store(total: int, overhead: int | None = None) -> ByteLRU:
    live = overhead is None  # measured here: later checks also count what the process grew by outside the cache
    overhead = (_rss_bytes() or 0) if overhead is None else overhead
    s = ByteLRU(max(0, int(total * (1 - MARGIN)) - overhead))
    s.total, s.overhead, s.live = total, overhead, live
    return s


def untracked_bytes(s: ByteLRU) -> int:
    """What the process holds beyond the server's start and the cache's entries (Streamlit's own caches, session
    state, the allocator's slack), from its RSS now; 0 for a cache made with a given overhead (tests)."""
    if not s.live:
        return 0
    trim()
    return max(0, (_rss_bytes() or 0) - s.overhead - s.used)


def reset_store(total: int | None = None, overhead: int | None = None) -> ByteLRU:
    """A new, empty cache (tests; a changed budget): `total` bytes (default: from the environment), of which
    `overhead` (default: the process's RSS now) is taken by the server itself."""
    global _STORE
    with _STORE_LOCK:
        _STORE = _make_store(int(budget_gb() * 2**30) if total is None else total, overhead)
        return _STORE


def _load(model: str, progress=None) -> Runner:
    s = store()
    need = LOAD_BYTES.get(model, 1_000_000_000)
    if s.make_room(need) < need:
        raise MemoryBudgetError(f"loading {model!r} takes about {gib(need)}, more than the {gib(s.budget - s.used)} "
                                f"the server's memory budget leaves ({gib(s.total)} for the whole server, set by "
                                f"{BUDGET_ENV}); close the "
                                "pages using other models or raise the budget")
    runner = serving.load_model(model, progress)  # the owner's rules: which folders, whether the Hub may be reached
    if runner.device.type == "cuda":
        runner.warm_up()
    return runner


def runner_bytes(runner) -> int:
    """Bytes of a runner's weights (parameters and buffers; the encoder shares the model's)."""
    return nbytes([runner.model, getattr(runner, "encoder", None)])


def get_runner(model: str) -> Runner:
    """One shared runner per model key ("embedded", "embedded-16k", a folder or Hub id); on a GPU warmed up
    (kernels compiled) while the loading spinner shows. Kept in the byte-bounded cache (`store`); a failed load
    is not cached."""
    key = ("runner", model)
    runner = store().get(key)
    if runner is not None:
        return runner
    said = st.empty()  # a first load converts a GGUF for a minute or more: say what it is doing meanwhile
    with st.spinner("Loading the model..."):
        runner = store().get_or_compute(key, lambda: _load(model, lambda text: said.info(text)), size=runner_bytes)
    said.empty()
    return runner


def _run(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None, capture: bool):
    runner = get_runner(model)
    config = AttentionConfig.from_dict(json.loads(config_json))
    # On a GPU the captures stay there: each figure reduces or slices what it shows on the device, then moves that.
    return runner.run(text, config=config, queries=list(queries), question=question, capture=capture,
                      capture_dtype=torch.float16, output_hidden_states=True,
                      keep_on_device=runner.device.type == "cuda")


def check_fits(model: str, need: RunBytes, config: AttentionConfig, capture: bool, what: str = "This run") -> None:
    """Make room in the cache for an action of estimated size `need` (evicting least recently used runs); raise
    MemoryBudgetError, saying what to change, when it cannot fit even with every other run evicted."""
    s = store()
    with s.pin(("runner", model)):
        extra = untracked_bytes(s)
        free = s.make_room(need.peak + extra) - extra
    if free >= need.peak:
        return
    runner = get_runner(model)
    n = longest_fitting(runner, need.n, config, free, capture=capture)
    biggest = max(need.parts.items(), key=lambda kv: kv[1])
    fixes = [f"shorten the text to about {n:,} tokens (it has {need.n:,})" if n else
             f"raise {BUDGET_ENV} (no length of text fits what is left: other pages' models hold the rest)"]
    full = all(spec.one_sided >= need.n - 1 for spec in config.resolve(runner.num_layers, runner.num_heads))
    if capture and full:  # e.g. the lab's full-attention baseline
        fixes.append("use a window narrower than the text, or another baseline (this is full attention captured: "
                     "n x n per head and layer)")
    elif capture:
        fixes.append("narrow the window (captured attention grows with it; a window covering the text is full "
                     "attention, n x n)")
    raise MemoryBudgetError(
        f"{what} would take about {gib(need.peak)} ({biggest[0]}: {gib(biggest[1])}), more than the "
        f"{gib(free)} the server's memory budget leaves ({gib(s.total)} for the whole server, set by {BUDGET_ENV}; "
        f"the models loaded and the server itself take the rest). To fit: {'; or '.join(fixes)}. Nothing was run; "
        "the previous settings still work.")


def free_bytes() -> int:
    """What the memory budget leaves now, beside the cache's entries and the rest of the process, for work the
    cache does not hold (the Scaling page's measurements); nothing is evicted."""
    s = store()
    return max(0, s.budget - s.held - s.used - untracked_bytes(s))


def reserve(n: int, config: AttentionConfig, capture: bool = False, what: str = "This run") -> bool:
    """Make room for runs of the current model on n tokens that are not cached (a sweep's, the advisor's: one at
    a time); False, with the message on the page, when one cannot fit."""
    model = st.session_state["model"]
    try:
        check_fits(model, run_bytes(get_runner(model), n, config, capture=capture), config, capture, what)
        return True
    except MemoryBudgetError as e:
        st.error(str(e))
        return False


def budgeted(kind: str, capture: bool = False, full_attention: bool = False):
    """Decorator: cache f(model, text, config_json, queries, question) in the byte-bounded store under `kind`,
    after checking that the run it makes (captured or not; under full attention when `full_attention`) fits the
    memory budget. `.clear()` drops this kind's entries."""
    def wrap(f):
        def cached(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None):
            key = (kind, model, text, config_json, tuple(queries), question)
            s = store()
            hit = s.get(key)
            if hit is not None:
                return hit
            runner = get_runner(model)
            config = AttentionConfig.from_dict(json.loads(config_json))
            n = len(tokenized(model, text, question)["tokens"])
            if full_attention:
                config = AttentionConfig(window=2 * n)
            need = run_bytes(runner, n, config, capture=capture)
            check_fits(model, need, config, capture)
            # held while it runs: a run another tab starts meanwhile finds that much taken
            with s.pin(("runner", model)), s.hold(need.peak):
                value = s.get_or_compute(key, lambda: f(model, text, config_json, queries, question))
            trim()  # the run's temporaries go back to the system, so RSS follows what the cache holds
            return value

        cached.clear = lambda: store().clear(kind)
        cached.__wrapped__, cached.__doc__ = f, f.__doc__
        return cached
    return wrap


# Captured runs hold every layer's attention (hundreds of MB at 4k tokens); runs without capture hold hidden states
# only. Both share one budget in bytes: the least recently used run goes first, whatever its kind.
@budgeted("run", capture=True)
def _cached_captured_run(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None):
    return _run(model, text, config_json, queries, question, True)


@budgeted("plain")
def _cached_plain_run(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None):
    return _run(model, text, config_json, queries, question, False)


def _cached_run(model: str, text: str, config_json: str, queries: tuple[str, ...], question: str | None,
                capture: bool):
    """The cached run of a document (captured or not)."""
    return (_cached_captured_run if capture else _cached_plain_run)(model, text, config_json, queries, question)


_cached_run.clear = lambda: (_cached_captured_run.clear(), _cached_plain_run.clear())


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
            return _cached_run(*args, capture)
    except MemoryBudgetError as e:
        st.error(str(e))
        return None
    except ValueError as e:
        st.error(f"Cannot run this configuration: {e}")
        return None
    except torch.cuda.OutOfMemoryError:
        _cached_run.clear()  # drop cached captures so the memory can be reused
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
    return bool(getattr(runner, "causal", False))  # asked of the runner (RunnerBase.causal), not its task string


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


def _native(runner) -> tuple[int, ...] | None:
    """What the window 'native' stands for with this model: its own per-layer windows."""
    return None if runner is None else tuple(runner.native_windows)


def check_fields(fields: dict[str, str]) -> AttentionConfig:
    """The configuration the three text fields describe, checked against the model and the document's length;
    ValueError naming what to fix."""
    runner = current_runner()
    cfg = config_from_text(fields["window"], fields["dilation"], fields["global"], native=_native(runner))
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
        if good is None:
            return None, str(e)
        try:
            return config_from_text(*(good[k] for k in FIELDS), native=_native(current_runner())), str(e)
        except ValueError:  # 'native' last held for another model: nothing valid to fall back on
            return None, str(e)
    ss["_good_fields"] = {k: ss[k] for k in FIELDS}
    return cfg, None


def current_config() -> AttentionConfig | None:
    """The configuration in force (see `config_in_force`)."""
    return config_in_force()[0]
