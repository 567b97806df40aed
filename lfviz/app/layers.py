"""The Pattern page's layers: the per-layer strip (which layers slide, which see everything), edits made per layer
(make layers slide or full, widen every sliding layer, add sinks, back to native), and the ready-made experiment
"which layers carry long-range information" (lfviz.analysis.ablation), with progress."""
from __future__ import annotations

import json
import time

import pandas as pd
import streamlit as st

from ..analysis import ablation
from ..analysis import layers as lay
from ..config import AttentionConfig
from ..figures import layers as figs
from ..textspec import NATIVE, format_positions, format_window, parse_positions


def layer_type(runner, cfg: AttentionConfig, n: int, layer: int) -> str:
    """The sidebar's words for one layer: "layer 5: full attention (native: full)"."""
    row = lay.layer_rows(cfg, runner.native_windows, runner.num_layers, runner.num_heads, n, runner.causal)[layer]
    what = "full attention" if row.kind == "full" else f"sliding, {row.keys:,} keys"
    return f"Layer {layer}: {what}" + (f" (native: {row.native_kind})" if row.changed else " (as native)")


def _windows(runner, cfg: AttentionConfig) -> tuple[int, ...]:
    return tuple(s.window for s in cfg.resolve(runner.num_layers, runner.num_heads))


def _set_window(windows) -> None:
    windows = tuple(windows)
    st.session_state["window"] = format_window(windows[0] if len(set(windows)) == 1 else windows)  # "8", not "8,8,.."


def _edit(action: str, runner, cfg: AttentionConfig) -> None:
    """A button's edit of the configuration in force (a callback: the sidebar shows it on this very run)."""
    ss = st.session_state
    windows, native = _windows(runner, cfg), runner.native_windows
    picked, width = list(ss.get("layers_pick", [])), int(ss.get("layers_window", 512))
    full = 2 * runner.max_tokens  # reaches every token the model can read
    if action == "slide":
        _set_window(lay.set_windows(windows, picked, width))
    elif action == "full":
        _set_window(lay.set_windows(windows, picked, full))
    elif action == "widen":
        _set_window(lay.widen_sliding(windows, full, width))
    elif action == "sinks":
        ss["global"] = format_positions(sorted(set(parse_positions(ss["global"])) | {0, 1, 2, 3}))
    elif action == "native":
        ss["window"] = NATIVE


def strip(runner, cfg: AttentionConfig, n: int) -> None:
    """The per-layer strip and its edits."""
    ss = st.session_state
    st.subheader("Layers")
    rows = lay.layer_rows(cfg, runner.native_windows, runner.num_layers, runner.num_heads, n, runner.causal)
    st.plotly_chart(figs.layer_strip(rows, n, int(ss["layer"])), key="layers_strip", width="stretch")
    slide = lay.sliding_window(runner.native_windows)
    native_words = (f"native pattern: layers {format_positions(lay.full_layers(runner.native_windows))} see the "
                    f"whole text, the others slide ({slide // 2 + 1:,} keys each)" if slide else
                    "native pattern: every layer alike")
    st.caption(f"Each bar is a layer: how many keys a query sees in it on this {n:,}-token text (global tokens "
               f"apart); {native_words}. The sidebar's window field holds one window per layer; these buttons "
               "edit it.")
    ss.setdefault("layers_window", slide or 512)
    c1, c2 = st.columns([3, 1])
    c1.multiselect("Layers to change", list(range(runner.num_layers)), key="layers_pick",
                   default=lay.full_layers(runner.native_windows) if "layers_pick" not in ss else None)
    c2.number_input("Window (two-sided, even)", 2, 2 * runner.max_tokens, step=2, key="layers_window",
                    help="A causal layer with window W sees itself and the W/2 tokens before it.")
    b = st.columns(5)
    b[0].button("Make them slide", key="layers_slide", on_click=_edit, args=("slide", runner, cfg),
                disabled=not ss.get("layers_pick"))
    b[1].button("Make them full", key="layers_full", on_click=_edit, args=("full", runner, cfg),
                disabled=not ss.get("layers_pick"))
    b[2].button("Every sliding layer to this window", key="layers_widen", on_click=_edit, args=("widen", runner, cfg))
    b[3].button("Add 4 sinks (tokens 0-3)", key="layers_sinks", on_click=_edit, args=("sinks", runner, cfg),
                disabled=not runner.causal)
    b[4].button("Back to native", key="layers_native", on_click=_edit, args=("native", runner, cfg),
                disabled=cfg.is_native)


def experiment(runner, cfg: AttentionConfig) -> None:
    """Which layers carry long-range information: each full layer made to slide, measured, with progress."""
    ss = st.session_state
    st.subheader("Which layers carry long-range information?")
    full = lay.full_layers(runner.native_windows)
    if not runner.causal or not full:
        st.caption("For a language model trained with sliding and full layers interleaved (Gemma 3 270M in the "
                   "model picker): each full layer is made to slide, alone and together, and the perplexity is "
                   "measured against its own pattern.")
        return
    ids = runner.tokenize(ss["document"]).input_ids
    found = ablation.repeated_span(ids)
    st.caption(f"Layers {format_positions(full)} see the whole text; each is made to slide like the others, alone, "
               "then all together, and the text's perplexity is measured against "
               + ("native." if cfg.is_native else "the sidebar's configuration.")
               + " The span: " + (f"tokens {found[0]:,}-{found[1] - 1:,} repeat earlier text (the copy test's second "
                                  "copy), found automatically." if found else "none repeats earlier text; choose one."))
    span = st.slider("Span whose perplexity is measured", 0, len(ids), found or (len(ids) // 2, len(ids)),
                     key=f"ablation_span_{len(ids)}")
    key = json.dumps([ss["model"], ss["document"], cfg.to_dict(), list(span)])
    runs = 2 + len(full)
    st.button(f"Run the experiment ({runs} runs)", key="ablation_run",
              on_click=lambda: ss.update(_ablation_requested=True))  # a flag: survives the run that routes the page
    if ss.pop("_ablation_requested", False):
        bar, started = st.progress(0.0, text="Measuring..."), time.time()

        def progress(done, total, name):
            left = (time.time() - started) / done * (total - done) if done else None
            bar.progress(done / total, text=f"{done}/{total} runs; now: {name}"
                         + (f"; about {left:.0f} s left" if left is not None and done < total else ""))

        try:
            ss["_ablation"] = (key, ablation.layer_ablation(runner, ids, cfg, tuple(span), progress=progress))
        except ValueError as e:
            st.error(str(e))
        bar.empty()
    done = ss.get("_ablation")
    if not done or done[0] != key:
        return
    rows = done[1]
    st.dataframe(pd.DataFrame(figs.ablation_table(rows, True)), hide_index=True, key="ablation_table")
    worst = max(rows[1:], key=lambda r: r.span_perplexity)
    which = (f"layer {worst.layers[0]}" if len(worst.layers) == 1 else f"layers {format_positions(worst.layers)}")
    st.markdown(f"Making **{which}** slide raises the span's "
                f"perplexity from **{rows[0].span_perplexity:,.1f}** to **{worst.span_perplexity:,.1f}** "
                f"({worst.span_perplexity / rows[0].span_perplexity:,.1f}x).")
    st.plotly_chart(figs.ablation_losses(rows, tuple(span)), key="ablation_losses", width="stretch")
