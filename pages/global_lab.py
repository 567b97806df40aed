"""Global-token lab: place global tokens (click, presets), set window/dilation per layer, and see what changes."""
import json

import pandas as pd
import streamlit as st

from lfviz import app_state, presets
from lfviz.compare import attention_change, hidden_change, received
from lfviz.config import AttentionConfig
from lfviz.figures import lab as figs
from lfviz.predictions import diff_predictions
from lfviz.sweep import sweep_global_position, sweep_window
from lfviz.textspec import format_dilation, format_positions, format_window

app_state.ensure_app_routing()
ss = st.session_state
st.title("Global-token lab")
st.caption("Click tokens (or drag a box) to make them global or local again; use presets; change window and "
           "dilation per layer. The variant is the sidebar's configuration, compared with a baseline you choose.")

runner, cfg = app_state.current_runner(), app_state.current_config()
if runner is None or cfg is None:
    st.stop()
if "lab_baseline" not in ss:
    ss["lab_baseline"] = json.dumps(cfg.replace(global_tokens=()).to_dict())  # default: same, no global tokens
baseline_cfg = AttentionConfig.from_dict(json.loads(ss["lab_baseline"]))

variant = app_state.run_document(cfg)
if variant is None:
    st.stop()
try:
    baseline = app_state.run_document(baseline_cfg)
except ValueError:
    baseline = None
n = variant.n


# -- placing global tokens --------------------------------------------------------------------------------------
def _set_globals(positions):
    ss["global"] = format_positions(sorted(set(positions)))


def _preset_positions():
    kind = ss["lab_preset"]
    if kind == "first token":
        return (0,)
    if kind == "question tokens":
        return tuple(runner.tokenize(ss["document"], ss.get("question")).question_tokens)
    if kind == "sentence starts":
        return presets.sentence_starts(variant.tokens, variant.offsets)
    if kind == "every k-th token":
        return presets.every_kth(n, int(ss["lab_k"]))
    return presets.matching(ss.get("lab_pattern", ""), variant.tokens, variant.offsets, variant.text,
                            regex=kind == "tokens matching a regex")


def _apply_preset(mode):
    try:
        found = _preset_positions()
    except ValueError as e:
        ss["_lab_msg"] = str(e)
        return
    if not found:
        ss["_lab_msg"] = f"the preset '{ss['lab_preset']}' found no token; the global tokens are unchanged"
        return
    _set_globals(found if mode == "replace" else set(cfg.global_tokens) | set(found))
    ss["_lab_msg"] = f"{len(found)} token(s) from '{ss['lab_preset']}'"


strip_scores = variant.predictions.token_scores[0] if variant.predictions.token_scores else \
    received(variant.capture.weights(variant.capture.captured_layers[-1])).mean(0).tolist()
strip_title = (f"Tokens by similarity to '{variant.predictions.token_score_labels[0][:50]}'"
               if variant.predictions.token_scores else "Tokens by attention received (last layer)")
event = st.plotly_chart(figs.token_strip(variant.tokens, strip_scores, cfg.global_tokens, strip_title),
                        on_select="rerun", selection_mode=("points", "box"), key="lab_strip",
                        width="stretch")
picked = tuple(event.selection.point_indices) if event and event.selection else ()
if not picked:
    ss.pop("_lab_picked", None)
elif ss.get("_lab_picked") != picked:  # a new click or box: toggle those tokens once
    ss["_lab_picked"] = picked
    app_state.request(**{"global": format_positions(presets.toggle(cfg.global_tokens, picked))})

c1, c2, c3, c4 = st.columns([2, 1, 2, 2])
c1.selectbox("Preset", ["first token", "question tokens", "sentence starts", "every k-th token",
                        "tokens matching a word", "tokens matching a regex"], key="lab_preset")
c2.number_input("k", 1, 4096, 256, key="lab_k")
c3.text_input("Word or regex", key="lab_pattern", placeholder="e.g. termination")
with c4:
    b1, b2, b3 = st.columns(3)
    b1.button("Replace", key="lab_replace", on_click=_apply_preset, args=("replace",))
    b2.button("Add", key="lab_add", on_click=_apply_preset, args=("add",))
    b3.button("Clear", key="lab_clear", on_click=_set_globals, args=((),))
if ss.get("_lab_msg"):
    st.caption(ss.pop("_lab_msg"))
st.write(f"**Global tokens ({len(cfg.global_tokens)}):** " + (", ".join(
    f"{p} `{variant.tokens[p]}`" for p in cfg.global_tokens[:40]) or "none") +
    (" ..." if len(cfg.global_tokens) > 40 else ""))

# -- window and dilation per layer --------------------------------------------------------------------------------
specs = cfg.resolve(runner.num_layers, runner.num_heads)
WINDOWS = [2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 768, 1024, 2048]
with st.expander("Window and dilation per layer"):
    cols = st.columns(runner.num_layers)
    for l, (col, spec) in enumerate(zip(cols, specs)):
        with col:
            st.markdown(f"**Layer {l}**")
            options = sorted(set(WINDOWS) | {spec.window})
            st.select_slider("window", options, value=spec.window, key=f"lab_window_{l}")
            st.slider("dilation", 1, 8, max(spec.dilation), key=f"lab_dil_{l}")
            dilated = [h for h, d in enumerate(spec.dilation) if d > 1] or list(range(runner.num_heads))
            st.multiselect("on heads", list(range(runner.num_heads)), default=dilated, key=f"lab_heads_{l}")

    def _apply_layers():
        windows = [ss[f"lab_window_{l}"] for l in range(runner.num_layers)]
        dil = []
        for l in range(runner.num_layers):
            d, heads = ss[f"lab_dil_{l}"], set(ss[f"lab_heads_{l}"])
            per_head = [d if h in heads else 1 for h in range(runner.num_heads)]
            dil.append(per_head[0] if len(set(per_head)) == 1 else per_head)
        ss["window"] = format_window(windows[0] if len(set(windows)) == 1 else tuple(windows))
        ss["dilation"] = format_dilation(dil[0] if all(d == dil[0] for d in dil) and isinstance(dil[0], int)
                                         else tuple(tuple(d) if isinstance(d, list) else d for d in dil))

    st.button("Apply to the configuration", key="lab_apply_layers", on_click=_apply_layers)

# -- baseline vs variant -------------------------------------------------------------------------------------------
st.subheader("Baseline vs variant")
b1, b2 = st.columns([3, 1])
b1.caption(f"Baseline: window {format_window(baseline_cfg.window)}, dilation "
           f"{format_dilation(baseline_cfg.dilation)}, global [{format_positions(baseline_cfg.global_tokens)}] - "
           f"variant: window {format_window(cfg.window)}, dilation {format_dilation(cfg.dilation)}, "
           f"global [{format_positions(cfg.global_tokens)}]")
b2.button("Use the current configuration as baseline", key="lab_set_baseline",
          on_click=lambda: ss.update(lab_baseline=json.dumps(cfg.to_dict())))
if baseline is None:
    st.stop()
if runner.converted and all(spec.one_sided * min(spec.dilation) >= n - 1 for spec in specs):
    st.info("Every layer's window covers the whole document, so global tokens change nothing here: this "
            "converted model's global projections are copies of its local ones. Narrow the window (sidebar or "
            "'Window and dilation per layer') to see what global tokens do.")
rows = diff_predictions(baseline.predictions, variant.predictions)
if rows:
    left, right = st.columns([3, 2])
    left.plotly_chart(figs.prediction_bars(rows), key="lab_pred_chart", width="stretch")
    table = pd.DataFrame(rows)
    right.dataframe(table, hide_index=True, width="stretch", key="lab_pred_table")
    right.download_button("Download CSV", table.to_csv(index=False), "lfviz_predictions.csv", "text/csv",
                          key="lab_pred_csv")
else:
    st.info(variant.predictions.note or "This model gives no ranked predictions for this document; add queries "
            "on the Document page.")
st.plotly_chart(figs.layer_changes(attention_change(baseline.capture, variant.capture),
                                   hidden_change(baseline.hidden_states, variant.hidden_states)),
                key="lab_layers_chart", width="stretch")

# -- sweep ----------------------------------------------------------------------------------------------------------
with st.expander("Sweep: move one global token across the document, or vary the window"):
    labels = [r["label"] for r in variant.predictions.rows]
    if not labels:
        st.info("A sweep tracks a prediction's score: add queries on the Document page first.")
    else:
        s1, s2, s3 = st.columns(3)
        s1.radio("Sweep", ["global token position", "window"], key="lab_sweep_kind")
        s2.selectbox("Track", labels, key="lab_sweep_label")
        s3.slider("Points", 3, 40, 12, key="lab_sweep_points")
        # A callback records the click, so a rerun before the body runs (routing) cannot lose it.
        st.button("Run the sweep", key="lab_sweep_run", on_click=lambda: ss.update(_lab_sweep_requested=True))
        if ss.pop("_lab_sweep_requested", False):
            bar = st.progress(0.0, text="Sweeping...")
            k = ss["lab_sweep_points"]
            common = dict(label=ss["lab_sweep_label"], queries=ss.get("queries", ()), question=ss.get("question"),
                          progress=lambda f: bar.progress(f, text=f"Sweeping... {f:.0%}"))
            if ss["lab_sweep_kind"] == "window":
                ws = [w for w in WINDOWS if w <= 2 * n][:k] or [2]
                ss["_lab_sweep"] = ("window", sweep_window(runner, ss["document"], cfg, ws, **common))
            else:
                step = max(1, (n - 1) // k)
                ss["_lab_sweep"] = ("position", sweep_global_position(runner, ss["document"], cfg,
                                                                      range(1, n - 1, step)[:k], **common))
            bar.empty()
        if ss.get("_lab_sweep"):
            kind, sweep_rows = ss["_lab_sweep"]
            st.plotly_chart(figs.sweep_line(sweep_rows, kind, ss["lab_sweep_label"]), key="lab_sweep_chart",
                            width="stretch")
            st.download_button("Download CSV", pd.DataFrame(sweep_rows).to_csv(index=False), "lfviz_sweep.csv",
                               "text/csv", key="lab_sweep_csv")
