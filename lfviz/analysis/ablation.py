"""Which layers carry long-range information: each layer the model runs with full attention is made to slide,
alone, then all of them together, and the text's perplexity (and a span's, such as the second copy of a repeated
passage) is measured against the native pattern. Every number is a measured run of the same weights.

A causal LM only (perplexity needs next-token predictions). The window a full layer is given is the model's own
sliding window, so "made to slide" means "made like its neighbours".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import AttentionConfig
from ..textspec import format_positions
from .layers import full_layers, set_windows, sliding_window

MIN_REPEAT = 8  # tokens: a shorter match is a common phrase, not a copy


@dataclass(frozen=True)
class AblationRow:
    name: str  # "native", "layer 5 slides", "layers 5, 11, 17 slide"
    layers: tuple[int, ...]  # the layers made to slide
    perplexity: float  # of the whole text
    span_perplexity: float  # of the span (nan without one)
    losses: tuple[float, ...]  # per token (nan for token 0): the loss strip


def repeated_span(ids, min_len: int = MIN_REPEAT) -> tuple[int, int] | None:
    """The longest run of tokens [start, stop) that repeats text seen earlier (each of its tokens ends an
    `min_len`-gram that occurred before, at least `min_len` tokens back), or None. O(n) with a hash set."""
    ids = list(ids)
    seen, marked = {}, [False] * len(ids)
    for i in range(min_len - 1, len(ids)):
        gram = tuple(ids[i - min_len + 1:i + 1])
        first = seen.setdefault(gram, i)
        marked[i] = first <= i - min_len
    best, start = None, None
    for i, m in enumerate(marked + [False]):
        if m and start is None:
            start = i - min_len + 1  # the whole first gram repeats too
        elif not m and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def _perplexity(losses, span) -> float:
    from ..model.causal_runner import perplexity

    return perplexity(losses, *(span or (1, None)))


def layer_ablation(runner, input_ids, config: AttentionConfig | None = None, span: tuple[int, int] | None = None,
                   window: int | None = None, progress: Callable[[int, int, str], None] | None = None,
                   reuse: bool = True) -> list[AblationRow]:
    """Native (or `config`), then each of its full layers made to slide alone, then all of them: perplexity of the
    text and of `span` (token positions [start, stop)). `window`: what a full layer becomes (default: the model's
    own sliding window). ValueError when the model has no full layer among sliding ones and no window is given.

    reuse (the same numbers, in a fraction of the time): the first run keeps each full layer's input; a run that
    makes layer L slide starts at L (`model.layer_resume`), and its losses before the window's reach are the first
    run's (a layer made to slide sees the same keys there), so the output head runs only from there on; no top-k
    next tokens are computed (nothing here shows them). reuse=False runs every configuration whole."""
    config = config or runner.native_config()
    windows = tuple(s.window for s in config.resolve(runner.num_layers, runner.num_heads))
    full = full_layers(runner.native_windows)
    window = window or sliding_window(runner.native_windows)
    if not full or window is None:
        raise ValueError(f"{runner.model_id} runs every layer alike (no full layers among sliding ones): this "
                         "experiment is for models trained with interleaved sliding and full layers, such as Gemma 3")
    plans = [("native" if config.is_native else "this configuration", ())]
    plans += [(f"layer {l} slides", (l,)) for l in full]
    plans.append((f"layers {format_positions(full)} slide", tuple(full)))
    ids, rows, base = list(input_ids), [], None
    for i, (name, layers) in enumerate(plans):
        if progress:
            progress(i, len(plans), name)
        cfg = config if not layers else config.replace(window=set_windows(windows, layers, window))
        losses = None
        if reuse and not layers:  # the first run, kept for the others to start from: (state, losses) or None
            base = _recorded(runner, ids, cfg)
            losses = base[1] if base else None
        elif base:
            losses = _resumed(runner, ids, config, cfg, base)
        if losses is None:
            res = runner.run(input_ids=ids, config=cfg, capture=False)
            losses = tuple(float(x) for x in res.predictions.token_scores[0])
        rows.append(AblationRow(name, layers, _perplexity(losses, None), _perplexity(losses, span) if span else
                                float("nan"), losses))
    if progress:
        progress(len(plans), len(plans), "done")
    return rows


def _recorded(runner, ids, cfg: AttentionConfig):
    """The first run of `ids` under `cfg`, kept for resuming at each full layer: (state, per-token losses); None
    where the decoder cannot be resumed (the caller then runs every configuration whole)."""
    import torch

    from ..model import layer_resume

    if not hasattr(runner, "next_token_stats"):
        return None
    state = layer_resume.record(runner, ids, cfg, keep=full_layers(runner.native_windows))
    if not state.resumable:
        return None
    x = torch.tensor(ids, dtype=torch.long, device=runner.device)
    return state, tuple(runner.next_token_stats(state.last, x, 0)[0].tolist())


def _resumed(runner, ids, config: AttentionConfig, cfg: AttentionConfig, base):
    """Per-token losses of `ids` under `cfg`, resumed from `base` (`_recorded` under `config`) at the first layer
    where they differ; None where that layer's input was not kept."""
    import torch

    from ..model import layer_resume

    state, before = base
    specs = [c.resolve(runner.num_layers, runner.num_heads) for c in (config, cfg)]
    layer, position = layer_resume.first_change(*specs, len(ids))
    if layer not in state.inputs:
        return None
    x = torch.tensor(ids, dtype=torch.long, device=runner.device)
    last = layer_resume.resume(runner, state, cfg, layer)
    after = runner.next_token_stats(last, x, 0, start=position)[0].tolist()
    # tokens up to `position` are predicted from rows before it, which the change does not reach
    return tuple(before[:position + 1]) + tuple(after[position + 1:])
