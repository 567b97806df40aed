"""The lesson's eight steps: each `fill` measures its number with the analysis the full page uses, and draws the
figure with that page's builder (or `figures.lesson` where no page draws it). A step that needs another model
sets `Step.needs` to the model to load, and computes nothing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..analysis import ablation, advisor, fidelity, pattern_runs, patterns, scaling
from ..analysis.layers import full_layers, sliding_window
from ..config import AttentionConfig, LayerSpec
from ..figures import fidelity as fid_figs
from ..figures import layers as layer_figs
from ..figures import lesson as lesson_figs
from ..figures import pattern as pattern_figs
from ..samples import get_sample
from ..textspec import format_positions
from .core import LessonConfig, Step, cut_text


def _causal(runner) -> bool:
    return bool(getattr(runner, "causal", False))


def _n(runner, text: str) -> int:
    return len(runner.tokenize(text).input_ids)


def _short(step: Step, runner, text: str, cfg: LessonConfig) -> str:
    """The text, or its first `cfg.max_tokens` tokens when the lesson was asked to cut it (the step then says so:
    its full page measures the whole document)."""
    short = cut_text(runner, text, cfg.max_tokens)
    if short != text:
        step.note = (f"Measured on the document's first {_n(runner, short):,} tokens (max_tokens {cfg.max_tokens:,}); "
                     "the full page measures the whole document.")
    return short


def _perplexity(res) -> float:
    return res.predictions.summary()["perplexity"]


def cost(step: Step, runner, text: str, cfg: LessonConfig, model_key: str) -> None:
    """Pairs per head at 1k, 4k and 16k tokens (the figure) and on this document (the number: the Pattern page's
    cost table counts the same pairs for the same window on this document); measured time of one forward pass."""
    H, n_doc = runner.num_heads, _n(runner, text)
    spec = LayerSpec(window=cfg.window, dilation=(1,) * H)
    costs = lambda n: {x.name: x for x in patterns.layer_costs(spec, n, H, causal=_causal(runner))}
    series = {"full attention": [], f"window {cfg.window}": []}
    for n in cfg.pair_lengths:
        c = costs(n)
        series["full attention"].append(c["full"].pairs)
        series[f"window {cfg.window}"].append(c["Longformer"].pairs)
        step.details.append(f"{n:,} tokens: full {c['full'].pairs:,} pairs per head "
                            f"({c['full'].score_bytes / 2**20:,.0f} MiB of scores per layer), window {cfg.window} "
                            f"{c['Longformer'].pairs:,} ({c['Longformer'].score_bytes / 2**20:,.1f} MiB): "
                            f"{c['full'].pairs / c['Longformer'].pairs:,.0f}x fewer")
    doc = costs(n_doc)
    step.value = doc["full"].pairs / doc["Longformer"].pairs
    step.value_text = (f"{step.value:,.1f}x fewer pairs with window {cfg.window} than full attention on this "
                       f"document's {n_doc:,} tokens ({doc['full'].pairs:,} against {doc['Longformer'].pairs:,} per "
                       f"head and layer); {series['full attention'][-1] / series[f'window {cfg.window}'][-1]:,.0f}x "
                       f"at {cfg.pair_lengths[-1]:,}")
    step.figure = lesson_figs.pairs_figure(list(cfg.pair_lengths), series)
    step.params = {"window": cfg.window, "global": ""}  # the Pattern page's cost table: the same counts
    if _causal(runner):
        step.note = "Measured time: the Scaling page measures encoders; load an embedded model to time them here."
        return
    rows = scaling.measure(runner, cfg.time_lengths, methods=("lfviz", "full"),
                           config=AttentionConfig(window=cfg.window), min_point_s=0.0)
    for r in rows:
        took = f"{r['seconds']:.3f} s" if r["seconds"] is not None else r["note"]
        name = f"window {cfg.window} (lfviz)" if r["key"] == "lfviz" else r["method"]
        step.details.append(f"measured now, {name} at {r['tokens']:,} tokens: {took}")
    top = {r["key"]: r["seconds"] for r in rows if r["tokens"] == max(cfg.time_lengths)}
    if top.get("lfviz") is not None and top.get("full") is not None and top["lfviz"] >= top["full"]:
        # a lecturer must not show a timing that contradicts the claim without saying why
        step.details.append(f"at {max(cfg.time_lengths):,} tokens the window is not faster yet: full attention's "
                            "dense kernel wins on short texts, and the n² term takes over only at a few thousand "
                            "tokens (the Scaling page measures longer ones)")
    step.details.append("the Scaling page measures time and memory at lengths you pick, up to the model's limit")


def _reach_value(curve, n: int) -> int:
    return sum(b - a + 1 for a, b in curve[-1])


def receptive_field(step: Step, runner, text: str, cfg: LessonConfig, model_key: str) -> None:
    n = _n(runner, text)
    source = n // 2 if cfg.source is None else min(max(0, cfg.source), n - 1)
    specs = AttentionConfig(window=cfg.window).resolve(runner.num_layers, runner.num_heads)
    curves = patterns.reach_curves(specs, n, (), source, _causal(runner))
    mine = curves["current configuration"]
    step.value = _reach_value(mine, n)
    cover = patterns.layers_to_cover(mine, n)
    step.value_text = (f"after {len(specs)} layers token {source}'s information reaches "
                       f"{patterns.describe_reach(mine[-1], n)}")
    step.details = [f"after layer {x}: {patterns.describe_reach(r, n)}" for x, r in enumerate(mine) if x]
    step.details.append("it reaches every token after " + (f"{cover} layers" if cover else
                                                            f"more than the model's {len(specs)} layers"))
    step.figure = pattern_figs.reach_figure(curves, n, source)
    step.params = {"window": cfg.window, "global": ""}


def dilation_text(num_layers: int, num_heads: int, d: int) -> str:
    """Dilation `d` on the last two heads of the upper half of the layers, 1 elsewhere (the paper's choice for
    its upper layers), in the sidebar's syntax: layers split by ';', heads by ','."""
    heads = ",".join(str(d if h >= num_heads - 2 else 1) for h in range(num_heads))
    return ";".join(heads if l >= num_layers // 2 else "1" for l in range(num_layers))


def dilation(step: Step, runner, text: str, cfg: LessonConfig, model_key: str) -> None:
    from ..textspec import parse_dilation

    n, L, H = _n(runner, text), runner.num_layers, runner.num_heads
    source = n // 2 if cfg.source is None else min(max(0, cfg.source), n - 1)
    spec_text = dilation_text(L, H, cfg.dilation)
    plain = AttentionConfig(window=cfg.window).resolve(L, H)
    dilated = AttentionConfig(window=cfg.window, dilation=parse_dilation(spec_text)).resolve(L, H)
    a = patterns.reach_curves(plain, n, (), source, _causal(runner))["current configuration"]
    b = patterns.reach_curves(dilated, n, (), source, _causal(runner))["current configuration"]
    span = lambda runs_: runs_[-1][1] - runs_[0][0] + 1
    first = L // 2  # the first dilated layer: where the gaps show
    step.value = span(b[first + 1]) / span(a[first + 1])
    step.value_text = (f"{step.value:.2f}x the span after layer {first + 1} with dilation {cfg.dilation} on 2 heads, "
                       "same keys per query: the dilated heads see every "
                       f"{cfg.dilation}th token (the gaps), which the other heads fill")
    step.details = [f"no dilation, after layer {first + 1}: {patterns.describe_reach(a[first + 1], n)}",
                    f"dilation {cfg.dilation}, after layer {first + 1}: {patterns.describe_reach(b[first + 1], n)}"]
    name = f"dilation {cfg.dilation} on 2 heads, upper layers"
    step.figure = pattern_figs.reach_figure({"no dilation": a, name: b}, n, source)
    step.params = {"window": cfg.window, "dilation": spec_text, "global": ""}


def global_token(step: Step, runner, text: str, cfg: LessonConfig, model_key: str) -> None:
    short = _short(step, runner, text, cfg)
    base = AttentionConfig(window=cfg.window)
    reference = fidelity.attention_from_afar(runner, short, base)
    advice = advisor.advise(runner, short, base, k=cfg.k, size=cfg.advisor_size, reference=reference,
                            compare_presets=False)
    full = reference[0]
    runs = {name: fidelity.measure(full, runner.run(short, config=c, capture=False, output_hidden_states=True))
            for name, c in (("no global tokens", base), (f"advisor's pick: {format_positions(advice.positions)}",
                                                         advice.config))}
    before, after = advice.base_gap, advice.gap
    step.value = 1 - after / before if before else 0.0
    spot = fidelity.blind_spots(runs["no global tokens"], 1)
    step.value_text = (f"{advice.k} global token(s) at {format_positions(advice.positions)} close {step.value:.0%} "
                       f"of the gap: {advisor.describe_gap(advice.objective, before, advice.reference)} without, "
                       f"{advisor.describe_gap(advice.objective, after, advice.reference)} with")
    if spot:
        step.details.append(f"the worst blind spot without global tokens: token {spot[0]}")
    step.details.append(f"{advice.runs} measured runs on the first {_n(runner, short):,} tokens")
    step.figure = fid_figs.layer_fidelity({k: v.per_layer for k, v in runs.items()})
    step.page = "pages/fidelity.py"
    step.params = {"window": cfg.window, "global": ",".join(map(str, advice.positions))}


def ramp(window: int, num_layers: int) -> tuple[int, ...]:
    """Even windows rising from window/2 (layer 0) to 3 window/2 (the last), summing to num_layers x window: the
    same keys per query as `window` everywhere, spent high rather than low."""
    if num_layers == 1:
        return (window,)
    w = [2 * max(1, round(window * (0.5 + l / (num_layers - 1)) / 2)) for l in range(num_layers)]
    w[-1] += num_layers * window - sum(w)  # rounding moved the total: the top layer takes the difference
    return tuple(w)


def per_layer(step: Step, runner, text: str, cfg: LessonConfig, model_key: str) -> None:
    short = _short(step, runner, text, cfg)
    n = _n(runner, short)
    windows = ramp(cfg.window, runner.num_layers)
    full = runner.run(short, config=fidelity.reference_config(runner, n), capture=False, output_hidden_states=True)
    configs = {f"window {cfg.window} everywhere": AttentionConfig(window=cfg.window),
               "small low, large high": AttentionConfig(window=windows)}
    fids = {k: fidelity.measure(full, runner.run(short, config=c, capture=False, output_hidden_states=True))
            for k, c in configs.items()}
    same, rising = (f.gap for f in fids.values())
    step.value = rising / same if same else float("nan")
    objective, ref = fidelity.default_objective(full), fidelity.reference_name(full)
    verdict = ("closer to" if step.value < 0.995 else "further from" if step.value > 1.005 else "as far from")
    step.value_text = (f"windows {format_positions(windows)}: {advisor.describe_gap(objective, rising, ref)}, against "
                       f"{advisor.describe_gap(objective, same, ref)} with window {cfg.window} everywhere, at the same "
                       f"cost: {step.value:.2f}x the distance, so the ramp ends {verdict} {ref} on this model")
    step.details = [f"distance from {fidelity.reference_name(full)} (as the Fidelity page's table rounds it): "
                    f"{name} {f.gap:.6f}" for name, f in fids.items()]
    step.figure = fid_figs.layer_fidelity({k: f.per_layer for k, f in fids.items()})
    step.page, step.params = "pages/fidelity.py", {"window": ",".join(map(str, windows)), "global": ""}


def three_patterns(step: Step, runner, text: str, cfg: LessonConfig, model_key: str) -> None:
    short = _short(step, runner, text, cfg)
    runs = pattern_runs.run_patterns(runner, short, AttentionConfig(window=cfg.window), layer=0, cells=64)
    gaps = {r.name: r.gap for r in runs}
    step.value = gaps[pattern_runs.LONGFORMER]
    step.value_text = "; ".join(f"{r.name} {r.gap:.4g}" for r in runs) + " from full attention, at about " \
        f"{runs[0].keys_per_query:,.0f} keys per query"
    step.details = [f"{r.name}: {r.settings}; {r.keys_per_query:,.1f} keys per query; {r.seconds:.2f} s"
                    + (f" ({r.note})" if r.note else "") for r in runs]
    step.figure = lesson_figs.value_bars({k: v for k, v in gaps.items() if v == v}, "Distance from full attention "
                                         "at the same budget (lower is closer)", "gap")
    step.params = {"window": cfg.window, "global": ""}


def sinks(step: Step, runner, text: str, cfg: LessonConfig, model_key: str) -> None:
    step.page, step.params = "pages/fidelity.py", {"model": "smollm2", "window": cfg.window,
                                                  "global": ",".join(map(str, range(cfg.sinks)))}
    if not _causal(runner):
        step.needs, step.note = "smollm2", "This step needs a causal language model: load SmolLM2 to measure it."
        return
    short = _short(step, runner, text, cfg)
    n = _n(runner, short)
    configs = {"window alone": AttentionConfig(window=cfg.window),
               f"window + {cfg.sinks} sinks": AttentionConfig(window=cfg.window, global_tokens=tuple(range(cfg.sinks))),
               "full attention": fidelity.full_attention(n)}
    ppl = {k: _perplexity(runner.run(short, config=c, capture=False)) for k, c in configs.items()}
    step.value = ppl[f"window + {cfg.sinks} sinks"]
    step.value_text = (f"perplexity {ppl['window alone']:,.1f} with window {cfg.window} alone, {step.value:,.1f} "
                       f"with {cfg.sinks} sinks, {ppl['full attention']:,.1f} with full attention ({n:,} tokens)")
    step.figure = lesson_figs.value_bars(ppl, "Perplexity: a window, the same plus sinks, full attention",
                                         "perplexity")
    step.params["model"] = model_key


def interleaved(step: Step, runner, text: str, cfg: LessonConfig, model_key: str, progress=None) -> None:
    step.page, step.params = "pages/pattern.py", {"model": "gemma3-270m", "sample": "copy_test", "window": "native",
                                                 "global": ""}
    if not (_causal(runner) and full_layers(runner.native_windows)):
        step.needs, step.note = "gemma3-270m", ("This step needs a model trained with sliding and full layers "
                                                "interleaved: load Gemma 3 270M to run the copy test.")
        return
    ids = runner.tokenize(get_sample("copy_test").text).input_ids
    found = ablation.repeated_span(ids)
    span = found or (len(ids) // 2, len(ids))  # as the Pattern page's experiment: no repeat found, the second half
    rows = ablation.layer_ablation(runner, ids, runner.native_config(), span, window=cfg.full_window,
                                   progress=progress)
    own = sliding_window(runner.native_windows)
    if cfg.full_window and cfg.full_window != own:
        step.note = (f"The full layers made to slide get window {cfg.full_window:,} here (their neighbours' is "
                     f"{own:,}); the Pattern page's experiment gives them their neighbours' window.")
    pick = lambda r: r.span_perplexity
    native, worst = pick(rows[0]), max(rows[1:], key=pick)
    step.value = pick(worst) / native
    where = (f"the second copy (tokens {span[0]:,}-{span[1] - 1:,})" if found else
             f"tokens {span[0]:,}-{span[1] - 1:,} (no passage repeats within the model's {len(ids):,} tokens)")
    step.value_text = (f"{where}: perplexity {native:,.1f} native, {pick(worst):,.1f} when {worst.name} "
                       f"({step.value:,.1f}x)")
    step.details = [f"{r.name}: perplexity {r.perplexity:,.1f}, " + ("second copy" if found else "the span")
                    + f" {r.span_perplexity:,.1f}" for r in rows]
    step.figure = layer_figs.ablation_losses(rows, span)
    step.params["model"] = model_key


@dataclass(frozen=True)
class StepSpec:
    number: int
    key: str
    title: str
    claim: str
    page: str
    fill: Callable[..., None]
    lazy: bool = False  # long on a model that can run it: the app computes it when shown (with progress), and its
    # fill takes progress(done, total, what)


STEPS = (
    StepSpec(1, "cost", "Full attention's cost grows as n²; a window's grows as n",
             "Every token attending every token costs n² pairs; a window of W costs about n x W. Double the text and "
             "full attention costs four times as much, the window twice.", "pages/pattern.py", cost),
    StepSpec(2, "window", "The sliding window, and the receptive field growing layer by layer",
             "One layer lets a token see only its neighbours, but each layer passes on what it saw: after l layers "
             "information has travelled l x W/2 tokens each way.", "pages/pattern.py", receptive_field),
    StepSpec(3, "dilation", "Dilation widens the span, leaving gaps",
             "A head that looks at every d-th neighbour sees d times as far with the same number of keys; the "
             "tokens in between are skipped, and other heads must fill the gaps.", "pages/pattern.py", dilation),
    StepSpec(4, "global", "A blind spot, and a global token that fixes it",
             "A window cannot see far; a few global tokens that see and are seen by everything carry information "
             "across the text. The advisor picks where, by measuring.", "pages/fidelity.py", global_token),
    StepSpec(5, "layers", "Windows per layer",
             "Small windows low and large windows high, against one window everywhere, at the same cost (as "
             "Longformer's paper does for character LM). Whether it helps this model is measured, not assumed.",
             "pages/fidelity.py", per_layer),
    StepSpec(6, "patterns", "BigBird, Reformer LSH and Longformer at the same budget",
             "Three sparse patterns with about as many keys per query, run on the same weights: each one's distance "
             "from full attention.", "pages/pattern.py", three_patterns),
    StepSpec(7, "sinks", "Sinks in a causal LM",
             "A language model trained with full attention piles attention on its first tokens; a window that drops "
             "them breaks it, and keeping 4 'sinks' in view repairs most of the damage.", "pages/fidelity.py", sinks),
    StepSpec(8, "gemma3", "Today's LLMs: Gemma 3's interleaved sliding and full layers",
             "Gemma 3 slides in 5 of every 6 layers; its few full layers carry the long range. Make them slide and "
             "the model can no longer copy a passage it read more than 512 tokens before.", "pages/pattern.py", interleaved,
             lazy=True),
)
