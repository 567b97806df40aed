"""The Fidelity page's parts: the full-attention reference (cached), named placements of global tokens measured
side by side, the blind-spot map over the text, what reaches a clicked token, and the placement advisor with
"apply". The measures are `lfviz.analysis.fidelity`, the advisor `lfviz.analysis.advisor`."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from ..analysis import advisor, advisor_search, fidelity, patterns
from ..config import AttentionConfig
from ..figures import fidelity as figs
from ..figures.pattern import reach_figure
from ..figures.token_text import value_scale
from ..textspec import format_positions
from . import cache, state
from .lab import prediction_table
from .token_text import value_text

SIDEBAR, NONE = "sidebar (in force)", "no global tokens"
MAX_K = 64  # the advisor's budget: each pick costs runs


@cache.budgeted("reference", full_attention=True)  # sized in bytes with the runs, checked against the budget
def _reference(model: str, text: str, base_json: str, queries: tuple[str, ...], question: str | None):
    runner = cache.get_runner(model)
    base = AttentionConfig.from_dict(json.loads(base_json))
    return fidelity.attention_from_afar(runner, text, base, question, list(queries))


def reference(cfg: AttentionConfig):
    """(the document under full attention, hidden states kept; (n,) attention each key gets from beyond the
    window) for the sidebar's window and dilation, cached: every placement and the advisor compare with it.
    None with a message when it cannot run."""
    ss = st.session_state
    try:
        with st.spinner("Running the document under full attention (the reference)..."):
            return _reference(ss["model"], ss["document"], json.dumps(cfg.replace(global_tokens=()).to_dict()),
                              tuple(ss.get("queries", ())), ss.get("question"))
    except ValueError as e:
        st.error(f"Cannot run full attention on this document: {e}")
        return None


def reference_note(runner) -> None:
    if getattr(runner, "trained_sparse", False):
        st.caption("Reference: this model's **native pattern** (its own sliding and full layers, read from its "
                   "config), not full attention: it was trained with a sliding window, so full attention on long "
                   "texts is a mode it never learned.")
    elif runner.converted:
        st.caption("Reference: these weights under full attention, which is how this model was trained, so the "
                   "distance from it is what the sparse pattern loses.")
    else:
        st.info(fidelity.REFERENCE_NOTE)


def objective_controls(full) -> tuple[str, str | None]:
    """What to measure the distance by: perplexity (causal LMs), or the pooled embedding or one prediction."""
    ss = st.session_state
    if fidelity.is_causal(full):
        st.caption(f"Distance from full attention: {fidelity.OBJECTIVES['perplexity']}.")
        return "perplexity", None
    labels = list(full.predictions.summary())
    options = ["embedding"] + (["prediction"] if labels else [])
    if ss.get("fid_objective") not in options:
        ss["fid_objective"] = "embedding"
    c1, c2 = st.columns([2, 3])
    objective = c1.radio("Distance from full attention by", options, key="fid_objective", horizontal=True,
                         format_func={"embedding": "the document's embedding", "prediction": "one prediction"}.get)
    label = c2.selectbox("Prediction", labels, key="fid_label") if objective == "prediction" else None
    st.caption(f"Distance: {fidelity.OBJECTIVES[objective]}.")
    return objective, label


def _kept() -> dict[str, tuple[int, ...]]:
    return st.session_state.setdefault("fid_kept", {}).setdefault(state.document_key(), {})


def placements(cfg: AttentionConfig, n: int) -> dict[str, tuple[int, ...]]:
    """The named placements to compare: the sidebar's, none, and those kept for this document."""
    named = {SIDEBAR: tuple(cfg.global_tokens), NONE: ()}
    named.update({name: pos for name, pos in _kept().items() if all(p < n for p in pos)})
    return named


def measure_all(cfg: AttentionConfig, full, named: dict, objective: str, label: str | None) -> dict:
    """name -> `Fidelity` of the document under the sidebar's window and dilation with that placement."""
    out = {}
    for name, positions in named.items():
        res = cache.run_document(cfg.replace(global_tokens=positions), capture=False)
        if res is not None:
            out[name] = fidelity.measure(full, res, objective, label)
    return out


def _short(positions, most: int = 12) -> str:
    return format_positions(positions, most) or "-"


def placement_table(named: dict, measured: dict, objective: str) -> None:
    rows = []
    for name, fid in measured.items():
        rows.append({"placement": name, "global tokens": len(named[name]), "positions": _short(named[name]),
                     "distance": round(fid.gap, 6), "in words": advisor.describe_gap(objective, fid.gap),
                     **{k: round(v, 5) for k, v in fid.document.items()}})
    st.dataframe(pd.DataFrame(rows).sort_values("distance", kind="stable"), hide_index=True, width="stretch",
                 key="fid_table")
    st.plotly_chart(figs.layer_fidelity({name: fid.per_layer for name, fid in measured.items()}),
                    key="fid_layers", width="stretch")


def prediction_changes(fid) -> None:
    """Every prediction the model makes, under full attention and under the sidebar's placement."""
    if not fid.predictions:
        return
    table = prediction_table(fid.predictions).rename(columns={"baseline": "full attention", "variant": "sidebar"})
    with st.expander(f"Every prediction: full attention vs the sidebar's placement ({len(table)})", key="fid_pred_box"):
        st.dataframe(table, hide_index=True, width="stretch", key="fid_predictions")
        st.caption("change = sidebar - full attention; rank: full attention's → the sidebar's (1 = best).")


def keep_controls(cfg: AttentionConfig, named: dict) -> None:
    """Keep the sidebar's placement under a name; put a kept one in the sidebar; forget them."""
    ss = st.session_state
    kept = _kept()

    def keep():
        name = ss.get("fid_name", "").strip()[:40] or f"placement {len(kept) + 1}"
        kept[name] = tuple(cfg.global_tokens)

    def use():
        ss["global"] = format_positions(named[ss["fid_use"]])

    c1, c2, c3, c4 = st.columns([2, 1.4, 2, 1.2], vertical_alignment="bottom")
    c1.text_input("Name", key="fid_name", placeholder="e.g. question tokens", max_chars=40)
    c2.button("Keep the sidebar's placement", key="fid_keep", on_click=keep)
    others = [name for name in named if name != SIDEBAR]
    c3.selectbox("Placement", others, key="fid_use")
    c4.button("Use it in the sidebar", key="fid_use_btn", on_click=use)
    if kept and st.button("Forget the kept placements", key="fid_forget"):
        kept.clear()
        st.rerun()


def blind_spot_map(result, fid, base, global_tokens) -> int | None:
    """The sidebar placement's per-token distance over the text, coloured on the scale of the placement without
    global tokens (so a better placement shows lighter). Returns a clicked position."""
    st.caption(f"Each token's {fid.per_token_label}: the stronger the red, the further it is from full attention"
               + (" (blue: predicted better)" if fidelity.is_causal(result) else "") + ". Full colour = the worst "
               "tokens with no global tokens, so a better placement shows lighter. Global tokens are boxed; click a "
               "token to see which tokens can reach it.")
    clicked = value_text(result, fid.per_token, "fid_map", click="see what reaches it", global_tokens=global_tokens,
                         value_format="{:.4f}" if not fidelity.is_causal(result) else "{:+.3f}",
                         scale=value_scale(base.per_token))
    worst = fidelity.blind_spots(fid, 8)
    word = lambda p: result.tokens[p].strip() or repr(result.tokens[p])
    st.caption("Furthest from full attention: " + ", ".join(f"{p} `{word(p)}` ({fid.per_token[p]:.4f})" for p in worst))
    return clicked


def reach_view(runner, cfg: AttentionConfig, n: int, clicked: int | None) -> None:
    """Which tokens can have reached the chosen token by each layer, through band and global hops (exact)."""
    ss = st.session_state
    if clicked is not None:
        ss["fid_token"] = clicked
    ss["fid_token"] = min(int(ss.get("fid_token", n // 2)), n - 1)
    token = int(st.number_input("Token", 0, n - 1, key="fid_token", help="Or click a token in the map above."))
    causal = cache.is_causal(runner)
    specs = cfg.resolve(runner.num_layers, runner.num_heads)
    curves = patterns.reach_curves(specs, n, cfg.global_tokens, token, causal, backward=True)
    st.plotly_chart(reach_figure(curves, n, token, backward=True), key="fid_reach", width="stretch")
    said = []
    for name, layers in curves.items():
        k = patterns.layers_to_cover(layers, n) if not causal else None
        said.append(f"**{name}**: " + (f"every token after {k} layer{'s' if k != 1 else ''}" if k else
                                       f"{patterns.describe_reach(layers[-1], n)} after the last layer"))
    st.markdown(" - ".join(said))


def _advice_key(cfg, objective, label) -> str:
    ss = st.session_state
    return json.dumps([ss["model"], state.document_key(), cfg.replace(global_tokens=()).to_dict(), int(ss["fid_k"]),
                       objective, label, list(ss.get("queries", ())), ss.get("question")])


def _picks_table(advice) -> pd.DataFrame:
    suspect = set(advice.restarts)
    return pd.DataFrame([{"pick": i + 1, "position": p.position, "token": p.token, "why a candidate": p.reason,
                          "distance after": round(p.gap, 6), "gain": round(p.gain, 6),
                          **({"measured with": p.measured_with} if p.measured_with > 1 else {}),
                          **({"warning": "copied positions restart here" if p.position in suspect else ""}
                             if suspect else {})}
                         for i, p in enumerate(advice.picks)])


def _suggest(runner, cfg, ref, objective, label, key) -> None:
    """Run the advisor, showing each pick as it is kept, with progress, time left and a Stop button. The advice
    grows in session state, so a stop keeps it: the Stop button's click sets a flag the search reads before each
    run, and in a browser the click also interrupts this script run at its next update; the next run finds
    `_fid_running` still set and marks the kept advice as stopped."""
    ss = st.session_state
    ss["_fid_stop"] = False
    stop = st.empty()
    stop.button("Stop (keep the picks so far)", key="fid_stop", on_click=lambda: ss.update(_fid_stop=True))
    bar = st.progress(0.0, text="Suggesting...")
    live = st.empty()
    ss["_fid_running"] = True
    try:
        for advice, pick, status in advisor.iter_advice(
                runner, ss["document"], cfg, int(ss["fid_k"]), objective, label, queries=ss.get("queries", ()),
                question=ss.get("question"), reference=ref, should_stop=lambda: ss.get("_fid_stop", False),
                progress=lambda f, what: bar.progress(f, text=f"Suggesting: {what}")):
            ss["_fid_advice"] = (key, advice)  # the same object, growing: what a stop keeps
            if pick is not None:
                with live.container():
                    st.caption(f"Pick {status.picks} of {status.k} found after {status.elapsed:.1f} s "
                               f"({status.runs} runs); about {status.left:.0f} s left.")
                    st.dataframe(_picks_table(advice), hide_index=True, key=f"fid_live_{status.picks}")
    except ValueError as e:
        st.error(f"Cannot suggest: {e}")
    ss["_fid_running"] = False
    for placeholder in (stop, bar, live):
        placeholder.empty()


def advisor_panel(runner, cfg: AttentionConfig, ref, objective: str, label: str | None, n: int) -> None:
    """Suggest k global tokens: the picks shown as they are found (progress, time left, a Stop that keeps them),
    then the picks and the presets at the same k in one table, and apply the recommendation to the sidebar."""
    ss = st.session_state
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    c1.number_input("Budget k (global tokens)", 1, min(n, MAX_K), min(4, n), key="fid_k")
    c2.button("Suggest global tokens", key="fid_suggest", type="primary",
              on_click=lambda: ss.update(_fid_requested=True))
    st.caption("The advisor shortlists candidates from the full-attention run (the tokens that get the most "
               "attention from beyond the window, the first token, question tokens, sentence starts, the worst blind "
               "spots, relays spread over the text), measures the most promising alone, then grows the picks in "
               "measured steps of 1, 2, 4, ... tokens, measures the presets with the same k, and last fills the "
               "picks up to k with the best preset's other positions (where that preset is closer than the picks, "
               "it keeps their first half and fills the rest) when that brings the run closer: at most "
               f"{advisor_search.CALL_RUNS} runs besides the full-attention run. Every number below is a measured "
               "run; the bar counts the runs planned; Stop keeps the picks found so far.")
    key = _advice_key(cfg, objective, label)
    if ss.pop("_fid_running", False) and ss.get("_fid_advice"):  # the last run was cut short (Stop, or a click)
        ss["_fid_advice"][1].stop()
    if ss.pop("_fid_requested", False) and cache.reserve(n, cfg, what="Each run of the advisor"):
        _suggest(runner, cfg, ref, objective, label, key)
    if not ss.get("_fid_advice"):
        return
    made_for, advice = ss["_fid_advice"]
    if made_for != key:
        st.info("The window, dilation, budget, objective or document changed since the last suggestion: suggest "
                "again for these settings.")
        return
    _show_advice(advice)


def _show_advice(advice) -> None:
    ss = st.session_state
    if advice.stopped and not advice.picks and not advice.presets:
        st.warning(f"Stopped before the first pick ({advice.runs} runs, {advice.seconds:.1f} s): nothing to show yet. "
                   "Suggest again.")
        return
    if advice.stopped:
        st.warning(f"Stopped at {len(advice.picks)} of {advice.k} picks: the picks and presets below are those "
                   f"measured before the stop ({advice.runs} runs, {advice.seconds:.1f} s). Suggest again for all "
                   f"{advice.k}.")
    best = advice.recommended
    if not best["positions"]:
        st.markdown(f"**Recommended: no global tokens.** No candidate and no preset brought the run closer to full "
                    f"attention than none ({advisor.describe_gap(advice.objective, advice.base_gap)}): here the "
                    f"window already does what global tokens would. {advice.runs} runs, {advice.seconds:.1f} s.")
    else:
        st.markdown(f"**Recommended: {best['strategy']}** at {_short(best['positions'])}: "
                    f"{advisor.describe_gap(advice.objective, best['gap'])} (no global tokens: "
                    f"{advisor.describe_gap(advice.objective, advice.base_gap)}). {advice.runs} runs, "
                    f"{advice.seconds:.1f} s.")
    if advice.picks:
        st.dataframe(_picks_table(advice), hide_index=True, key="fid_picks")
    note = advice.restart_note()
    if note:  # a converted model's artefact, not the text's: say so next to the pick
        st.warning(note[0].upper() + note[1:] + ".")
    if len(advice.picks) < advice.k and not advice.stopped:
        why = advice.ended or "no other candidate brought the run closer"
        st.caption(f"The greedy search stopped after {len(advice.picks)} pick(s): {why}.")
    table = advice.table()
    table["positions"] = table["positions"].map(_short)
    st.dataframe(table, hide_index=True, width="stretch", key="fid_compare")

    def apply():
        ss["global"] = format_positions(advice.positions)
        _kept()[f"advisor, k = {advice.k}"] = tuple(advice.positions)

    st.button("Apply the recommendation to the sidebar", key="fid_apply", on_click=apply)
