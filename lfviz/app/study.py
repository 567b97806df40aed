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

from ..config import AttentionConfig
from ..figures import study as figs
from ..samples import list_samples
from ..study.corpus import read_corpus
from ..study.job import read_results, run_study, summarize
from ..textspec import format_dilation, format_positions, format_window
from . import cache
from .state import MODEL_CHOICES

SAMPLE_STRATEGIES = ("none", "first", "first-k:4", "question", "sentence-starts", "evenly:8", "advisor:4")
WORK = Path(tempfile.gettempdir()) / "lfviz-study"


@st.cache_data(max_entries=4, show_spinner=False)
def _read(path: str, stamp: float) -> tuple[pd.DataFrame, dict]:
    return read_results(path)


def open_results() -> tuple[pd.DataFrame, dict] | None:
    """The results the page shows: the path typed (or filled by the samples study), else an upload."""
    ss = st.session_state
    c1, c2 = st.columns(2)
    c1.text_input("Results file on this machine (.parquet, written by `lfviz study`)", key="study_path",
                  placeholder="e.g. results.parquet")
    upload = c2.file_uploader("or upload one", type=["parquet"], key="study_upload")
    try:
        if upload is not None:
            WORK.mkdir(parents=True, exist_ok=True)
            path = WORK / f"upload-{upload.file_id}.parquet"
            path.write_bytes(upload.getvalue())
            return _read(str(path), path.stat().st_mtime)
        if ss.get("study_path", "").strip():
            path = Path(ss["study_path"].strip()).expanduser()
            if not path.is_file():
                raise ValueError(f"no such file: {path}")
            return _read(str(path), path.stat().st_mtime)
    except ValueError as e:
        st.error(f"{e}. The page keeps showing nothing until a study's results are opened.")
    return None


def samples_study(cfg: AttentionConfig) -> None:
    """Run a small study on the bundled samples with the sidebar's window and dilation (each sample a document)."""
    ss = st.session_state
    with st.expander("No results yet? Run a small study on the bundled samples", key="study_run_box"):
        st.multiselect("Strategies", SAMPLE_STRATEGIES, default=["none", "first", "evenly:8", "advisor:4"],
                       key="study_strategies")
        st.caption(f"{len(list_samples())} documents, the sidebar's model, window {format_window(cfg.window)} and "
                   f"dilation {format_dilation(cfg.dilation)}; the advisor takes a few seconds per document. The "
                   "same job on a corpus: `lfviz study CORPUS --window ... --strategies ... --out results.parquet`.")
        st.button("Run the study", key="study_run", on_click=lambda: ss.update(_study_requested=True),
                  disabled=not ss.get("study_strategies"))
    if not ss.pop("_study_requested", False):
        return
    folder = WORK / f"samples-{ss['model']}"
    corpus = folder / "corpus.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    corpus.write_text("\n".join(json.dumps({"id": s.id, "text": s.text, "question": s.question})
                                for s in list_samples()), encoding="utf-8")
    what = json.dumps([cfg.to_dict(), list(ss["study_strategies"])]).encode()
    out = folder / f"study-{hashlib.sha1(what).hexdigest()[:12]}.parquet"  # these settings: resumable, reusable
    bar = st.progress(0.0, text="Studying the samples...")
    try:
        run_study(corpus, out, model=ss["model"], config=cfg, strategies=list(ss["study_strategies"]),
                  runner=cache.current_runner(),
                  progress=lambda done, total, _: bar.progress(done / max(1, total), text=f"{done}/{total} documents"))
    except ValueError as e:
        st.error(f"The study could not run: {e}")
        return
    finally:
        bar.empty()
    ss["study_path"] = str(out)
    st.rerun()


def overview(rows: pd.DataFrame, settings: dict) -> None:
    cfg = AttentionConfig.from_dict(settings["config"])
    docs, failed = rows["id"].nunique(), rows["error"].notna().sum()
    st.caption(f"Model {settings['model']}, window {format_window(cfg.window)}, dilation "
               f"{format_dilation(cfg.dilation)}, objective {settings['objective']}; {docs:,} documents from "
               f"{settings['corpus']}" + (f"; {failed} rows failed (see below)" if failed else ""))
    st.dataframe(summarize(rows).round(5), hide_index=True, width="stretch", key="study_summary")
    st.caption("distance = how far the document's result is from the same weights under full attention (0 = "
               "identical); closest share = the share of documents on which that strategy was the closest.")
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


def _open_in_lab(rows: pd.DataFrame, settings: dict) -> None:
    ss = st.session_state
    doc_id, strategy = ss["study_doc"], ss["study_strategy"]
    try:
        doc = next(d for d in read_corpus(settings["corpus"]) if d.id == doc_id)
    except (ValueError, StopIteration) as e:
        ss["_study_open_error"] = (f"the document {doc_id!r} cannot be read from the study's corpus "
                                   f"({settings['corpus']}): {e or 'not found'}. Open the corpus here, or run the "
                                   "study on this machine.")
        return
    row = rows[(rows["id"] == doc_id) & (rows["strategy"] == strategy)].iloc[0]
    cfg = AttentionConfig.from_dict(settings["config"])
    if settings["model"] in MODEL_CHOICES:
        ss["model"] = settings["model"]
    ss.update(document=doc.text, sample="custom", question=doc.question, window=format_window(cfg.window),
              dilation=format_dilation(cfg.dilation), _study_open=True)
    ss["global"] = format_positions([int(p) for p in row["positions"]])
