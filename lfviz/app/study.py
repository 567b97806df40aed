"""The Study page's parts: open a study's results (a path on this machine or an upload), or run a small one on the
bundled samples; the summary per strategy, the distributions and the length trend side by side, the worst
documents, and "open in the lab" (the document, the study's window and that strategy's global tokens)."""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from ..analysis.fidelity import reference_config
from ..config import AttentionConfig
from ..figures import study as figs
from ..samples import list_samples
from ..study.corpus import Doc, read_corpus
from ..study.job import read_results, run_study, summarize
from ..textspec import format_dilation, format_positions, format_window
from . import cache, serving, state

SAMPLE_STRATEGIES = ("none", "first", "first-k:4", "question", "sentence-starts", "evenly:8", "advisor:4")
WORK = Path(tempfile.gettempdir()) / "lfviz-study"


MAX_RESULTS_MB = 50  # a results file is rows of numbers: 50 MB holds hundreds of thousands


@st.cache_data(max_entries=4, show_spinner=False)
def _read(path: str, stamp: float) -> tuple[pd.DataFrame, dict]:
    return read_results(path)


@st.cache_data(max_entries=4, show_spinner=False)
def _read_upload(data: bytes, name: str) -> tuple[pd.DataFrame, dict]:
    return read_results(data, name=name)  # in memory: an upload is never written to the server's disk


def _read_server_path(text: str) -> tuple[pd.DataFrame, dict]:
    """Results at a typed server path, where the owner allows paths; one message for every failure (missing,
    a folder, unreadable, not a study's): the page never tells whether a path exists."""
    path = serving.server_path(text, "a study's results file")
    try:
        return _read(str(path), path.stat().st_mtime)
    except (OSError, ValueError):
        raise ValueError(f"cannot open {text.strip()[:200]!r}: it is not a study's results file this app can open "
                         "(a .parquet written by `lfviz study`)") from None


def open_results() -> tuple[pd.DataFrame, dict] | None:
    """The results the page shows: the samples study just run, an upload, or (where the owner allows server paths)
    a typed path. Where they came from is kept in "_study_source": it decides which documents may be opened."""
    ss = st.session_state
    c1, c2 = st.columns(2)
    if serving.paths_allowed():
        c1.text_input("Results file on this machine (.parquet, written by `lfviz study`)", key="study_path",
                      placeholder="e.g. results.parquet", on_change=lambda: ss.pop("_study_samples", None))
    else:
        c1.caption("Opening files on the server is off on this shared app: upload a results file, or run a small "
                   "study on the samples.")
    upload = c2.file_uploader("or upload one", type=["parquet"], key="study_upload",
                              max_upload_size=MAX_RESULTS_MB)
    try:
        if upload is not None:
            ss["_study_source"] = "upload"
            return _read_upload(upload.getvalue(), upload.name)
        if ss.get("_study_samples"):
            path = Path(ss["_study_samples"])  # made by this app: the samples study's own file
            ss["_study_source"] = "samples"
            return _read(str(path), path.stat().st_mtime)
        if serving.paths_allowed() and ss.get("study_path", "").strip():
            ss["_study_source"] = "path"
            return _read_server_path(ss["study_path"])
    except (ValueError, OSError) as e:
        st.error(f"{e}. The page keeps showing nothing until a study's results are opened.")
    ss.pop("_study_source", None)
    return None


def samples_study(cfg: AttentionConfig) -> None:
    """Run a small study on the bundled samples with the sidebar's window and dilation (each sample a document)."""
    ss = st.session_state
    with st.expander("No results yet? Run a small study on the bundled samples", key="study_run_box"):
        st.multiselect("Strategies", SAMPLE_STRATEGIES, default=["none", "first", "evenly:8", "advisor:4"],
                       key="study_strategies")
        st.caption(f"{len(list_samples())} documents, the sidebar's model, window {format_window(cfg.window)} and "
                   f"dilation {format_dilation(cfg.dilation)}. The advisor measures each candidate with a forward pass: "
                   "expect a minute or more per document on a 2-core CPU (the others take seconds). The "
                   "same job on a corpus: `lfviz study CORPUS --window ... --strategies ... --out results.parquet`.")
        st.button("Run the study", key="study_run", on_click=lambda: ss.update(_study_requested=True),
                  disabled=not ss.get("study_strategies"))
    if not ss.pop("_study_requested", False):
        return
    runner = cache.current_runner()
    n = max(len(runner.tokenize(s.text, s.question).input_ids) for s in list_samples())
    # each document's reference run (full attention, or a sliding-trained model's native pattern) is the largest
    if not cache.reserve(n, reference_config(runner, n), what="Each run of the study"):
        return
    folder = WORK / f"samples-{hashlib.sha1(ss['model'].encode()).hexdigest()[:12]}"  # a model key may hold a path
    corpus = folder / "corpus.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    corpus.write_text("\n".join(json.dumps({"id": s.id, "text": s.text, "question": s.question})
                                for s in list_samples()), encoding="utf-8")
    what = json.dumps([cfg.to_dict(), list(ss["study_strategies"])]).encode()
    out = folder / f"study-{hashlib.sha1(what).hexdigest()[:12]}.parquet"  # these settings: resumable, reusable
    bar = st.progress(0.0, text="Studying the samples...")
    try:
        run_study(corpus, out, model=ss["model"], config=cfg, strategies=list(ss["study_strategies"]),
                  runner=runner,
                  progress=lambda done, total, _: bar.progress(done / max(1, total), text=f"{done}/{total} documents"))
    except ValueError as e:
        st.error(f"The study could not run: {e}")
        return
    finally:
        bar.empty()
    ss["_study_samples"] = str(out)  # opened directly: never through the path field
    st.rerun()


def overview(rows: pd.DataFrame, settings: dict) -> None:
    cfg = AttentionConfig.from_dict(settings["config"])
    docs, failed = rows["id"].nunique(), rows["error"].notna().sum()
    corpus = "the bundled samples" if st.session_state.get("_study_source") == "samples" else settings["corpus"]
    # st.text, not markdown: the settings come from the file, and markdown could make the browser fetch a URL
    st.text(f"Model {settings['model']}, window {format_window(cfg.window)}, dilation "
            f"{format_dilation(cfg.dilation)}, objective {settings['objective']}; {docs:,} documents from {corpus}"
            + (f"; {failed} rows failed (see below)" if failed else ""))
    reference = settings.get("reference") if isinstance(settings.get("reference"), str) else None
    st.dataframe(summarize(rows, reference).round(5), hide_index=True, width="stretch", key="study_summary")
    st.caption(f"distance = how far the document's result is from the same weights under "
               f"{reference or 'full attention'} (0 = identical); closest share = the share of documents on which that strategy was the closest.")
    left, right = st.columns(2)
    left.plotly_chart(figs.gap_distributions(rows), key="study_box", width="stretch")
    right.plotly_chart(figs.length_trend(rows), key="study_trend", width="stretch")


def worst_documents(rows: pd.DataFrame, settings: dict) -> None:
    """A strategy's documents furthest from full attention, and the one chosen opened in the lab."""
    ss = st.session_state
    strategies = list(dict.fromkeys(rows["strategy"]))
    if ss.get("study_strategy") not in strategies:
        ss["study_strategy"] = strategies[0]
    st.selectbox("Strategy", strategies, key="study_strategy")
    mine = rows[(rows["strategy"] == ss["study_strategy"]) & rows["error"].isna()]
    worst = mine.sort_values("gap", ascending=False).head(10)
    shown = worst[["id", "tokens", "gap", "global_tokens", "positions"]].copy()
    shown["positions"] = shown["positions"].map(lambda p: format_positions(p, 10))
    st.dataframe(shown, hide_index=True, width="stretch", key="study_worst")
    failed = rows[rows["error"].notna()].drop_duplicates("id")
    if len(failed):
        st.dataframe(failed[["id", "error"]], hide_index=True, width="stretch", key="study_failed")
    if worst.empty:
        return
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    c1.selectbox("Document", list(worst["id"]), key="study_doc")
    c2.button("Open it in the lab with this strategy", key="study_open", on_click=_open_in_lab,
              args=(rows, settings))
    if ss.pop("_study_open", False):
        st.switch_page("pages/global_lab.py")
    if ss.get("_study_open_error"):
        st.error(ss.pop("_study_open_error"))


def study_documents(source: str | None, settings: dict) -> list[Doc]:
    """The documents a study's rows may be opened from, by where the results came from: the bundled samples always
    (they are public); the corpus the server was started with (`LFVIZ_CORPUS`); and the corpus the results name
    only when the results file itself was on the server (opened by path, where the owner allows paths) and that
    corpus passes the same path rules. An uploaded file's corpus path is never read."""
    docs = [Doc(i, s.id, s.text, s.question) for i, s in enumerate(list_samples())]
    places = [serving.server_corpus()]
    if source == "path" and serving.paths_allowed():
        try:
            places.append(serving.server_path(str(settings.get("corpus", "")), "a corpus"))
        except ValueError:
            pass
    for place in places:
        if place is not None:
            try:
                docs += read_corpus(place)
            except ValueError:
                continue  # unreadable: its documents are simply not offered
    return docs


def _open_in_lab(rows: pd.DataFrame, settings: dict) -> None:
    """The chosen document in the lab with the study's window and dilation and the strategy's global tokens. A
    bundled sample comes with its own queries and question (and can travel in a link); a corpus document with its
    question and no queries."""
    ss = st.session_state
    doc_id, strategy = ss["study_doc"], ss["study_strategy"]
    doc = next((d for d in reversed(study_documents(ss.get("_study_source"), settings))
                if d.id == doc_id and d.error is None), None)
    if doc is None:
        where = ("the bundled samples or the corpus this app was started with (LFVIZ_CORPUS)"
                 if ss.get("_study_source") != "path" else "the study's corpus, the samples or LFVIZ_CORPUS")
        ss["_study_open_error"] = (f"the chosen document is not among {where}, so it cannot be "
                                   "opened here. Paste its text on the Document page, or start the app with the "
                                   "study's corpus: make run CORPUS=/path/to/corpus.")
        return
    row = rows[(rows["id"] == doc_id) & (rows["strategy"] == strategy)].iloc[0]
    cfg = AttentionConfig.from_dict(settings["config"])
    if settings["model"] in state.MODEL_CHOICES:
        ss["model"] = settings["model"]
    sample = next((s for s in list_samples() if s.id == doc.id and s.text == doc.text), None)
    if sample is not None:
        state.use_sample(sample.id)  # its queries and question too: the link carries it
    else:
        ss.update(document=doc.text, sample="custom", queries=[], question=doc.question)
    ss.update(window=format_window(cfg.window), dilation=format_dilation(cfg.dilation), _study_open=True)
    ss.pop("_global_anchor", None)  # the strategy's positions are for this very text: nothing to carry over
    ss["global"] = format_positions([int(p) for p in row["positions"]])
