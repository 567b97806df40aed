"""The Pattern page's "Run these patterns on the model": Longformer, BigBird and Reformer LSH through the same
weights, each measured against full attention (`analysis.pattern_runs`), with the attention each computed for the
sidebar's layer and head, and the LSH buckets over the text."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from ..analysis import pattern_runs as pr
from ..attention.sparse import BigBirdPattern, LSHPattern
from ..figures import comparison as figs
from . import cache, state
from .token_text import value_text


def _key(cfg, layer: int, equal: bool, custom) -> str:
    ss = st.session_state
    return json.dumps([ss["model"], state.document_key(), cfg.to_dict(), layer, equal, custom,
                       list(ss.get("queries", ())), ss.get("question")])


def section(runner, cfg, n: int, layer: int, head: int) -> None:
    ss = st.session_state
    st.subheader("Run these patterns on the model")
    st.caption("The same document through the same weights under Longformer (the sidebar's configuration), BigBird "
               "and Reformer's LSH, each measured against full attention: what each attends, costs, and keeps.")
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    c1.checkbox("Equal budget: BigBird and LSH sized to the Longformer configuration's keys per query", True,
                key="pr_equal")
    c2.button("Run the three patterns", key="pr_run", type="primary", on_click=lambda: ss.update(_pr_requested=True))
    custom = None if ss["pr_equal"] else [int(ss.get("pattern_block", 64)), int(ss.get("pattern_random", 3))]
    if custom:
        st.caption(f"Not equal: BigBird with the picture's block size {custom[0]} and {custom[1]} random blocks; LSH "
                   f"with chunks of {custom[0]}, 2 rounds.")
    key = _key(cfg, layer, ss["pr_equal"], custom)
    if ss.pop("_pr_requested", False):
        bar = st.progress(0.0, text="Running...")
        patterns = None
        if custom:
            buckets = max(2, 1 << max(1, (2 * n // custom[0]).bit_length() - 1))
            patterns = (BigBirdPattern(custom[0], custom[1]), LSHPattern(buckets, 2, custom[0]))
        runs = pr.run_patterns(runner, ss["document"], cfg, layer, equal=not custom, patterns=patterns,
                               question=ss.get("question"), queries=ss.get("queries", ()),
                               progress=lambda f, what: bar.progress(f, text=f"Running: {what}"))
        bar.empty()
        ss["_pr"] = (key, runs)
    if not ss.get("_pr"):
        return
    made_for, runs = ss["_pr"]
    if made_for != key:
        st.info("The document, configuration, layer or sizing changed since the last run: run the patterns again.")
        return
    _show(runs, n, layer, head)


def _number(value, digits: int) -> str:
    """A table cell: thousands separated, `digits` decimals, "-" where there is no number."""
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


def measures_table(runs) -> pd.DataFrame:
    """One row per measure, one column per pattern: as many columns as patterns (three), so the table fits the
    page whatever the measures (a causal LM adds perplexities); the settings are said below it."""
    rows = {"keys per query": [_number(r.keys_per_query, 1) for r in runs],
            "forward (s)": [_number(r.seconds, 2) for r in runs],
            "memory (MB)": [_number(r.memory_mb, 0) for r in runs],
            "distance from full attention": [_number(r.gap, 5) for r in runs]}
    for name in dict.fromkeys(k for r in runs for k in r.document):
        rows[name] = [_number(r.document.get(name), 5) for r in runs]
    return pd.DataFrame([{"measure": k, **dict(zip((r.name for r in runs), v))} for k, v in rows.items()])


def _show(runs, n: int, layer: int, head: int) -> None:
    st.dataframe(measures_table(runs), hide_index=True, width="stretch", key="pr_table")
    st.caption("keys per query: layer " f"{layer}, mean over heads and queries. forward: one pass on this machine; "
               "BigBird and LSH run on lfviz's generic sparse path (query chunks of a dense masked softmax on the "
               "CPU), so their time is that path's, not what a block-sparse kernel would take. memory: the process's "
               "peak growth during the pass. distance: as on the Fidelity page (0 = full attention).")
    for r in runs:
        st.caption(f"**{r.name}:** {r.settings}." + (f" {r.note}" if r.note else ""))
    cols = st.columns(len(runs))
    for col, r in zip(cols, runs):
        if r.picture is not None:
            col.plotly_chart(figs.captured_heatmap(r.picture[min(head, len(r.picture) - 1)], n,
                                                   f"{r.name}: layer {layer}, head {head}"), key=f"pr_pic_{r.name}",
                             width="stretch")
    lsh = next((r for r in runs if r.buckets is not None), None)
    result = cache.run_document(capture=False) if lsh is not None else None
    if lsh is not None and result is not None:
        buckets = lsh.buckets[min(head, len(lsh.buckets) - 1), 0]  # (n,) the first round
        st.markdown(f"**LSH buckets over the text** (layer {layer}, head {head}, first round): one colour per bucket. "
                    "Hashing puts tokens whose keys point the same way in one bucket, wherever they are in the text; "
                    "a chunk then attends within and across the buckets it holds.")
        value_text(result, buckets.astype(float).tolist(), "pr_buckets", value_format="bucket {:.0f}",
                   colors=figs.bucket_colors(buckets))
        sizes = np.bincount(buckets)
        used = sizes[sizes > 0]
        st.caption(f"{len(used)} of {lsh.settings.split(' x ')[1].split(' ')[0]} buckets hold tokens in this round; "
                   f"the fullest holds {used.max()} tokens, half hold {int(np.median(used))} or fewer.")
