"""The Scaling page's controls (lengths, methods, runs per point), the measurement with its progress bar, and
the results view. Measuring is `lfviz.analysis.scaling`; the plots are `lfviz.figures.scaling`."""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from ..analysis import scaling
from ..analysis.peak_memory import memory_meaning
from ..figures.scaling import memory_figure, time_figure
from . import cache


def kept(widget, name: str, label: str, default, valid=lambda v: True, arg: str = "value", **kwargs):
    """A widget whose value survives visits to other pages: Streamlit forgets the keys of widgets it does not
    draw, so the value is copied to a plain key and given back as the widget's starting value."""
    ss, keep = st.session_state, f"_scaling_keep_{name}"
    start = ss.get(keep, default)
    start = start if valid(start) else default  # e.g. a length the newly chosen model cannot take
    ss[keep] = widget(label, key=f"scaling_{name}", **{arg: start}, **kwargs)
    return ss[keep]


def length_options(max_tokens: int) -> list[int]:
    """Lengths offered: powers of two from 16 below the model's positions, then the model's maximum."""
    return [n for n in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384) if n < max_tokens] + [max_tokens]


def controls(runner) -> tuple[list[int], list[str], int, str]:
    """Lengths, methods and runs per point; returns them with a description of the device."""
    options = length_options(runner.max_tokens)
    c1, c3 = st.columns([4, 1])
    c2 = st.container()  # the methods get a row of their own: their names stay readable
    with c1:
        lo, hi = kept(st.select_slider, "lengths", "Lengths (tokens; every length listed in this range is run)",
                      (min(256, options[-1]), min(4096, options[-1])), valid=lambda v: all(x in options for x in v),
                      options=options, format_func=lambda n: f"{n:,}")
    with c2:
        methods = kept(st.multiselect, "methods", "Methods", list(scaling.DEFAULT_METHODS), arg="default",
                       valid=lambda v: all(m in scaling.METHODS for m in v), options=list(scaling.METHODS),
                       format_func=scaling.METHODS.get)
    with c3:
        repeats = kept(st.number_input, "repeats", "Runs per point", 1, min_value=1, max_value=5, step=1,
                       help="Each point is the fastest of at least this many runs (points under 0.3 s run more "
                            "often anyway); 2-3 steady the numbers on a busy machine.")
    lengths = [n for n in options if lo <= n <= hi]
    device = runner.device.type.upper() + (f" ({torch.get_num_threads()} threads)" if runner.device.type == "cpu"
                                           else "")
    st.caption(f"{len(lengths)} lengths x {len(methods)} methods on {device}. Full attention costs grow ~4x per "
               "doubling; the default set (256-4,096 tokens, three methods) takes about 15 s on 2 idle CPU cores. "
               "Other work on the machine (another tab, another program) slows the numbers down.")
    return lengths, methods, int(repeats), device


def measure(runner, config, lengths, methods, repeats: int, device: str) -> None:
    """Run the measurement with a progress bar; the results stay in the session for later visits."""
    ss = st.session_state
    bar = st.progress(0.0, text="Copying the model for Hugging Face's implementation..." if "hf" in methods
                      else "Starting...")
    try:
        # a method's one-layer scores and their softmax are alive together: half of what the budget leaves
        rows = scaling.measure(runner, lengths, methods, config, repeats=repeats,
                               max_score_bytes=min(scaling.MAX_SCORE_BYTES, cache.free_bytes() // 2),
                               progress=lambda done, total, what: bar.progress(done / total,
                                                                               text=f"{done}/{total}: {what}"))
    except ValueError as e:
        st.error(f"Cannot measure: {e}")
    else:
        ss["scaling_results"] = dict(rows=rows, model=runner.model_id, device=device, repeats=repeats,
                                     config=(ss["window"], ss["dilation"], ss["global"]),
                                     memory=memory_meaning(runner.device))
    bar.empty()


def crossover_text(cross: dict) -> str:
    """Why lfviz can be slower than dense attention on short texts, and where the measured curves cross."""
    why = ("lfviz's kernel pays constant costs per layer that dense attention does not (its blocks and chunks, "
           "the global rows computed apart, more small operations), while at short lengths attention is a small "
           "share of the work and dense attention's n² is still cheap; n² wins in the end.")
    if cross["tokens"]:
        return f"lfviz is faster than full attention from about {cross['tokens']:,} tokens (dotted line). Below: {why}"
    if cross["below"] is False:
        return f"lfviz was slower than full attention at every length measured: {why} Measure longer lengths to see the curves cross."
    if cross["below"] is True:
        return "lfviz was faster than full attention at every length measured."
    return "Measure both lfviz and full attention to compare them."


def results(runner, res: dict) -> None:
    """Time and memory plots, growth exponents, and the table of the last measurement."""
    ss = st.session_state
    window, dilation, globals_ = res["config"]
    st.caption(f"Measured: {res['model']} on {res['device']}, fastest of at least {res['repeats']} run(s) "
               f"per point; lfviz with window {window}, dilation {dilation}, global tokens [{globals_ or 'none'}].")
    if (res["model"], res["config"]) != (runner.model_id, (ss["window"], ss["dilation"], ss["global"])):
        st.info("The model or the sidebar's configuration has changed since: click **Measure** to measure again.")
    rows = res["rows"]
    left, right = st.columns(2)
    with left:
        cross = scaling.crossover(rows)
        st.plotly_chart(time_figure(rows, cross["tokens"]), key="scaling_time_chart")
        st.caption(crossover_text(cross))
        growth = scaling.growth_exponents(rows)
        if growth:
            st.caption("Growth over the three longest lengths (time ~ n^k, log-log slope): "
                       + "; ".join(f"{m}: k = {k:.2f}" for m, k in growth.items())
                       + ". k = 1 is linear, k = 2 quadratic; short lengths are dominated by the feed-forward "
                         "layers, which are linear for every method.")
    with right:
        st.plotly_chart(memory_figure(rows), key="scaling_memory_chart")
        st.caption(f"**Measured memory** (solid): {res['memory']}. Small or zero values mean the call reused "
                   "memory already held, not that it needed none. **Scores** (dotted, computed, not measured): the "
                   "fp32 attention scores of one layer, all heads, in the method's layout (band n x (W + 1) plus "
                   "global columns; n x n for full attention), i.e. what an implementation that keeps them at once "
                   "holds. Hugging Face keeps them; lfviz's kernel and PyTorch's SDPA work through them a few MB "
                   "at a time.")
    table = pd.DataFrame(rows).drop(columns=["key"])
    st.dataframe(table, hide_index=True, key="scaling_table", column_config={
        "seconds": st.column_config.NumberColumn("seconds", format="%.3f"),
        "memory_mb": st.column_config.NumberColumn("measured MB", format="%.1f"),
        "scores_mb": st.column_config.NumberColumn("scores MB (one layer)", format="%.1f"),
    })
    st.download_button("Download CSV", table.to_csv(index=False), file_name="lfviz_scaling.csv", mime="text/csv",
                       key="scaling_csv")
