"""The Global-token lab's widget groups: picking global tokens (clicks, box selection, presets), window and
dilation per layer, the baseline-vs-variant comparison, and sweeps. The logic they call is in `lfviz.analysis`
(presets, compare, sweep) and `lfviz.textspec`."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from ..analysis import presets
from ..analysis.compare import (attention_change, hidden_change, loss_increase, region_perplexity,
                                token_strip_values)
from ..analysis.sweep import WINDOWS, position_points, sweep_global_position, sweep_window, window_points
from ..config import AttentionConfig
from ..figures import lab as figs
from ..model.predictions import diff_predictions
from ..textspec import format_dilation, format_positions, format_window, layer_settings_text
from . import cache, state
from .token_text import token_text, value_text


BASELINES = {
    "no global": "Same window and dilation, no global tokens (follows the variant)",
    "full": "Full attention: a window covering the text, no global tokens",
    "native": "Native: the model's own pattern (a sliding-window LLM's reference), no global tokens",
    "pinned": "Pinned: a configuration you fixed with 'Pin the current configuration'",
}
METRIC_WORDS = {  # what the lab's numbers mean, in plain words, where they appear
    "similarity": "score = cosine similarity between the document's embedding and the query's (-1 to 1; higher "
                  "means the model finds the document closer to the query)",
    "fill-mask": "score = the probability the model gives that token at the mask",
    "question-answering": "score = the probability of that answer span",
    "classification": "score = the probability of that label",
    "next-token": "perplexity = exp of the mean next-token loss over the text (lower = the model predicts the text "
                  "better); next: '...' = the probability of that token coming right after the text",
    "TV": "TV distance (bars) = how much of the attention the tokens receive moved to other tokens: 0 the same, "
          "1 all of it",
    "cos": "1 - cos (line) = how far each token's hidden state turned, averaged over tokens: 0 the same "
           "direction, 1 at right angles",
}


def baseline_config(cfg: AttentionConfig, n: int, runner=None) -> tuple[AttentionConfig, str]:
    """The baseline chosen in the lab (`lab_baseline_kind`): one that follows the variant without global tokens
    (the default), full attention, the model's native pattern (with `runner`), or a pinned configuration.
    Returns it and the kind in force."""
    ss = st.session_state
    kind = ss.get("lab_baseline_kind", "no global")
    if kind == "full":
        return AttentionConfig(window=2 * n), kind  # cut to the text's length by the kernel: full attention
    if kind == "native" and runner is not None:
        return AttentionConfig.native(runner), kind
    if kind == "pinned" and ss.get("lab_baseline"):
        return AttentionConfig.from_dict(json.loads(ss["lab_baseline"])), kind
    return cfg.replace(global_tokens=()), "no global"


def baseline_controls(cfg: AttentionConfig, baseline: AttentionConfig, kind: str) -> None:
    """Choose the baseline, pin the current configuration, and say which baseline is in force."""
    ss = st.session_state
    b1, b2 = st.columns([3, 2])
    b1.radio("Baseline", list(BASELINES), key="lab_baseline_kind", format_func=BASELINES.get, horizontal=True)

    def pin():
        ss.update(lab_baseline=json.dumps(cfg.to_dict()), lab_baseline_kind="pinned")

    b2.button("Pin the current configuration as baseline", key="lab_set_baseline", on_click=pin)
    st.caption(f"In force: **{BASELINES[kind].split(':')[0]}** - baseline {describe(baseline)}; variant (the "
               f"sidebar's) {describe(cfg)}.")


def _set_globals(positions) -> None:
    st.session_state["global"] = format_positions(sorted(set(positions)))


def _apply_preset(mode: str, runner, variant, cfg: AttentionConfig) -> None:
    ss = st.session_state
    kind = ss["lab_preset"]
    try:
        question = runner.tokenize(ss["document"], ss.get("question")).question_tokens if kind == "question tokens" else ()
        found = presets.preset_positions(kind, variant.tokens, variant.offsets, variant.text, question,
                                         k=ss["lab_k"], pattern=ss.get("lab_pattern", ""))
    except ValueError as e:
        ss["_lab_msg"] = str(e)
        return
    if not found:
        ss["_lab_msg"] = f"the preset '{kind}' found no token; the global tokens are unchanged"
        return
    _set_globals(found if mode == "replace" else set(cfg.global_tokens) | set(found))
    ss["_lab_msg"] = f"{len(found)} token(s) from '{kind}'"


def global_token_picker(runner, variant, cfg: AttentionConfig) -> None:
    """The clickable token strip (a click or box toggles tokens), presets, and the list of global tokens."""
    ss = st.session_state
    scores, title = token_strip_values(variant)
    event = st.plotly_chart(figs.token_strip(variant.tokens, scores, cfg.global_tokens, title), on_select="rerun",
                            selection_mode=("points", "box"), key="lab_strip", width="stretch")
    picked = tuple(event.selection.point_indices) if event and event.selection else ()
    if not picked:
        ss.pop("_lab_picked", None)
    elif ss.get("_lab_picked") != picked:  # a new click or box: toggle those tokens once
        ss["_lab_picked"] = picked
        state.request(**{"global": format_positions(presets.toggle(cfg.global_tokens, picked))})

    with st.expander("Pick tokens in the text (click a word; global ones in red)", key="lab_text_box",
                     expanded=bool(ss.get("lab_text_box", False))):
        token_text(variant, cfg.global_tokens)
    c1, c2, c3, c4 = st.columns([2, 1, 2, 2])
    c1.selectbox("Preset", presets.PRESETS, key="lab_preset")
    c2.number_input("k", 1, 4096, 256, key="lab_k")
    c3.text_input("Word or regex", key="lab_pattern", placeholder="e.g. termination")
    with c4:
        b1, b2, b3 = st.columns(3)
        b1.button("Replace", key="lab_replace", on_click=_apply_preset, args=("replace", runner, variant, cfg))
        b2.button("Add", key="lab_add", on_click=_apply_preset, args=("add", runner, variant, cfg))
        b3.button("Clear", key="lab_clear", on_click=_set_globals, args=((),))
    if ss.get("_lab_msg"):
        st.caption(ss.pop("_lab_msg"))
    shown = ", ".join(f"{p} `{variant.tokens[p]}`" for p in cfg.global_tokens[:40])
    st.write(f"**Global tokens ({len(cfg.global_tokens)}):** " + (shown or "none") +
             (" ..." if len(cfg.global_tokens) > 40 else ""))


def layer_controls(runner, specs) -> None:
    """Window and dilation (on chosen heads) per layer, applied to the sidebar's configuration on request."""
    ss = st.session_state
    L, H = runner.num_layers, runner.num_heads
    with st.expander("Window and dilation per layer", key="lab_layers_box"):  # keyed: stays open across reruns
        for l, spec in enumerate(specs):  # one row per layer: every control wide enough to read
            c0, c1, c2, c3 = st.columns([1, 2, 1.5, 6.5], vertical_alignment="center")
            c0.markdown(f"**Layer {l}**")
            c1.select_slider("window", sorted(set(WINDOWS) | {spec.window}), value=spec.window, key=f"lab_window_{l}")
            c2.slider("dilation", 1, 8, max(spec.dilation), key=f"lab_dil_{l}")
            dilated = [h for h, d in enumerate(spec.dilation) if d > 1] or list(range(H))
            c3.multiselect("on heads", list(range(H)), default=dilated, key=f"lab_heads_{l}")

        def apply():
            ss.update(layer_settings_text([ss[f"lab_window_{l}"] for l in range(L)],
                                          [ss[f"lab_dil_{l}"] for l in range(L)],
                                          [ss[f"lab_heads_{l}"] for l in range(L)], H))

        st.button("Apply to the configuration", key="lab_apply_layers", on_click=apply)


def describe(cfg: AttentionConfig) -> str:
    return (f"window {format_window(cfg.window)}, dilation {format_dilation(cfg.dilation)}, "
            f"global [{format_positions(cfg.global_tokens)}]")


def prediction_table(rows: list[dict]) -> pd.DataFrame:
    """The diff rows as a narrow table: label, both scores, the change, and the rank move ("2 → 1")."""
    rank = lambda r: f"{r['baseline_rank'] or '-'} → {r['variant_rank'] or '-'}"
    return pd.DataFrame({"label": [r["label"] for r in rows], "baseline": [r["baseline"] for r in rows],
                         "variant": [r["variant"] for r in rows], "change": [r["delta"] for r in rows],
                         "rank": [rank(r) for r in rows]}).round(4)


def comparison(baseline, variant) -> None:
    """Prediction changes (chart, table, CSV) and the per-layer change of attention and hidden states, each
    with what its numbers mean."""
    rows = diff_predictions(baseline.predictions, variant.predictions)
    if rows:
        st.caption(METRIC_WORDS.get(variant.predictions.kind, "") + "; the labels on the bars show variant - baseline.")
        left, right = st.columns([3, 2])
        left.plotly_chart(figs.prediction_bars(rows), key="lab_pred_chart", width="stretch")
        table = pd.DataFrame(rows)
        right.dataframe(prediction_table(rows), hide_index=True, width="stretch", key="lab_pred_table")
        right.download_button("Download CSV", table.to_csv(index=False), "lfviz_predictions.csv", "text/csv",
                              key="lab_pred_csv")
    else:
        st.info(variant.predictions.note or "This model gives no ranked predictions for this document; add "
                "queries on the Document page.")
    st.plotly_chart(figs.layer_changes(attention_change(baseline.capture, variant.capture),
                                       hidden_change(baseline.hidden_states, variant.hidden_states)),
                    key="lab_layers_chart", width="stretch")
    st.caption(f"{METRIC_WORDS['TV']}. {METRIC_WORDS['cos']}. Changes below {figs.NOISE:g} are rounding, drawn as 0.")


def window_cost_panel(variant) -> None:
    """A causal LM: where the pattern hurts. Each token's loss increase over full causal attention (same weights),
    and the perplexity of a chosen region under both."""
    ss = st.session_state
    # every earlier token: how it was trained. Only its losses and next tokens are shown: no capture (at 4k tokens
    # a causal LM's full attention captured is 30 x 9 x n x n fp16, 8.6 GB)
    full = cache.run_document(AttentionConfig(window=2 * variant.n), capture=False)
    if full is None:
        return
    st.subheader("Where the window hurts: loss against full attention")
    up = loss_increase(full, variant)
    st.caption("Each token's next-token loss under the variant minus under full causal attention (same weights), "
               "laid over the text: red = predicted worse, blue = better, stronger = more; hover for the nats. "
               "Click a token to see what the model expects after it.")
    clicked = value_text(variant, up, "lab_loss_text", click="see what comes next",
                         global_tokens=variant.config.global_tokens)
    if clicked is not None:
        ss["lab_next_at"] = clicked
    ss["lab_next_at"] = min(int(ss.get("lab_next_at", 100)), variant.n - 1)  # a shorter text: still a token of it
    st.plotly_chart(figs.loss_increase_strip(variant.tokens, up, "The same by position (nats)"), key="lab_loss_up",
                    width="stretch")
    c1, c2, c3 = st.columns([1, 1, 2])
    start = c1.number_input("Region from token", 1, variant.n - 1 if variant.n > 1 else 1, 1, key="lab_region_start")
    stop = c2.number_input("to token (excluded)", int(start) + 1, variant.n, variant.n, key="lab_region_stop")
    ours, theirs = region_perplexity(variant, int(start), int(stop)), region_perplexity(full, int(start), int(stop))
    c3.metric(f"Perplexity of tokens {int(start)}-{int(stop) - 1}", f"{ours:.2f}", f"{ours - theirs:+.2f} vs full "
              f"attention ({theirs:.2f})", delta_color="inverse")
    at = int(st.number_input("What comes next after token", 0, variant.n - 1, key="lab_next_at",
                             help="The model's top guesses for the token after this one; or click the text above."))
    nxt = variant.predictions.next_tokens, full.predictions.next_tokens
    if nxt[0] and nxt[1]:
        actual = variant.tokens[at + 1] if at + 1 < variant.n else "(end of text)"
        st.caption(f"After token {at} {variant.tokens[at]!r}; the text goes on with {actual!r}.")
        st.dataframe(pd.DataFrame({"variant": [w for w, _ in nxt[0][at]], "p (variant)": [p for _, p in nxt[0][at]],
                                   "full attention": [w for w, _ in nxt[1][at]],
                                   "p (full)": [p for _, p in nxt[1][at]]}), hide_index=True, key="lab_next_table")


def sweep_panel(runner, variant, cfg: AttentionConfig) -> None:
    """Move one global token across the document, or vary the window; track one prediction's score against its
    score under the configuration in force. Keyed, and open once it has results, so reruns keep it open."""
    ss = st.session_state
    with st.expander("Sweep: move one global token across the document, or vary the window", key="lab_sweep_box",
                     expanded=bool(ss.get("_lab_sweep"))):
        labels = [r["label"] for r in variant.predictions.rows]
        if not labels:
            st.info("A sweep tracks a prediction's score: add queries on the Document page first.")
            return
        s1, s2, s3, s4 = st.columns(4)
        s1.radio("Sweep", ["global token position", "window"], key="lab_sweep_kind")
        s2.selectbox("Track", labels, key="lab_sweep_label")
        s3.slider("Points", 3, 40, 12, key="lab_sweep_points")
        moving = s4.selectbox("Global token that moves", [None, *cfg.global_tokens], key="lab_sweep_moving",
                              format_func=lambda p: "none: add one" if p is None else f"{p} {variant.tokens[p]}",
                              disabled=ss["lab_sweep_kind"] == "window")
        # A callback records the click, so a rerun before the body runs (routing) cannot lose it.
        st.button("Run the sweep", key="lab_sweep_run", on_click=lambda: ss.update(_lab_sweep_requested=True))
        if ss.pop("_lab_sweep_requested", False) and cache.reserve(variant.n, cfg, what="Each run of the sweep"):
            bar = st.progress(0.0, text="Sweeping...")
            k = ss["lab_sweep_points"]
            common = dict(label=ss["lab_sweep_label"], queries=ss.get("queries", ()), question=ss.get("question"),
                          progress=lambda f: bar.progress(f, text=f"Sweeping... {f:.0%}"))
            if ss["lab_sweep_kind"] == "window":
                rows = sweep_window(runner, ss["document"], cfg, window_points(variant.n, k), **common)
                ss["_lab_sweep"] = ("window", rows, ss["lab_sweep_label"])
            else:
                rows = sweep_global_position(runner, ss["document"], cfg, position_points(variant.n, k),
                                             moving=moving, **common)
                ss["_lab_sweep"] = ("position", rows, ss["lab_sweep_label"])
            bar.empty()
        if ss.get("_lab_sweep"):
            kind, rows, label = ss["_lab_sweep"]
            reference = variant.predictions.summary().get(label)
            st.plotly_chart(figs.sweep_line(rows, kind, label, reference), key="lab_sweep_chart", width="stretch")
            st.download_button("Download CSV", pd.DataFrame(rows).to_csv(index=False), "lfviz_sweep.csv",
                               "text/csv", key="lab_sweep_csv")
