"""Longformer vs BigBird vs Reformer LSH, run for real: the same document through the same weights under each
pattern, each measured against full attention (`fidelity`), timed, its memory and attended pairs counted, and a
picture of one layer's attention as it was computed.

Equal budget (`equal_budget`): BigBird and LSH sized to about the keys per query of the Longformer configuration
(window W + 1 plus its global tokens): BigBird's block b with (5 + r) b ~ W + 1 (window 3 blocks, 2 global
blocks, r random; r = 3 where the text allows), LSH's chunk c with R rounds of 2c keys ~ W + 1 and Reformer's
recommended 2n / c buckets (a power of two).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..attention import bigbird, lsh
from ..attention.sparse import BigBirdPattern, LSHPattern, add_to_picture, attention_pattern, picture_mean
from ..config import AttentionConfig
from .fidelity import full_attention, measure
from .peak_memory import PeakMemory

LONGFORMER = "Longformer"


def longformer_keys(config: AttentionConfig, n: int, layer: int = 0, heads: int = 1) -> int:
    """Keys per non-global query of the configuration at `layer`: its band (cut to the text) plus global tokens."""
    spec = config.resolve(layer + 1, heads)[layer].for_length(n)
    return min(n, spec.window + 1 + len(config.global_tokens))


def equal_budget(config: AttentionConfig, n: int, num_hashes: int = 2, seed: int = 0) -> tuple[BigBirdPattern,
                                                                                                LSHPattern]:
    """BigBird and LSH patterns with about as many keys per query as the Longformer configuration."""
    keys = longformer_keys(config, n)
    r = 3
    while r > 0 and n < bigbird.min_length(max(1, round(keys / (5 + r))), r):
        r -= 1
    block = max(1, round(keys / (5 + r)))
    while n < bigbird.min_length(block, r) and block > 1:  # a short text: smaller blocks keep it block-sparse
        block -= 1
    chunk = max(1, round(keys / (2 * num_hashes)))
    buckets = max(2, 1 << max(1, (2 * n // chunk).bit_length() - 1))
    return (BigBirdPattern(block=block, num_random=r, seed=seed),
            LSHPattern(num_buckets=buckets, num_hashes=num_hashes, chunk=chunk, seed=seed))


def describe(pattern) -> str:
    if isinstance(pattern, BigBirdPattern):
        return f"blocks of {pattern.block}, 3-block window, 2 global blocks, {pattern.num_random} random (seeded)"
    if isinstance(pattern, LSHPattern):
        return (f"{pattern.num_hashes} rounds x {pattern.num_buckets} buckets, chunks of {pattern.chunk} with the "
                f"chunk before")
    return "the sidebar's window, dilation and global tokens"


@dataclass
class PatternRun:
    name: str
    settings: str
    keys_per_query: float  # mean attended keys per query, one layer, all heads (LSH: distinct keys)
    seconds: float  # one forward pass
    memory_mb: float | None  # the process's peak growth during it (`PeakMemory`)
    gap: float  # `fidelity.gap` against full attention
    document: dict  # `Fidelity.document`
    picture: np.ndarray | None  # (H, m, m) mean attention per cell of `layer`, rows = query cells
    buckets: np.ndarray | None = None  # LSH: (H, R, n) buckets of `layer`'s keys
    note: str = ""


def _picture_of_capture(weights, n: int, cells: int) -> np.ndarray:
    """(H, m, m) mean attention per cell from a Longformer capture, densified a block of rows at a time."""
    H = weights.stored.shape[0]
    m = min(n, cells)
    cell = torch.arange(n) * m // n
    pool = torch.zeros(H, m, m)
    step = max(1, 2**22 // max(1, H * n))
    for s in range(0, n, step):
        add_to_picture(pool, weights.dense(rows=slice(s, min(n, s + step))).float().cpu(), s, cell)  # (H, C, n) rows
    return picture_mean(pool, n).numpy()


def _timed(fn, device):
    with PeakMemory(device) as memory:
        t = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t
    return out, seconds, memory.grown_mb


def run_patterns(runner, text: str, config: AttentionConfig, layer: int = 0, equal: bool = True, patterns=None,
                 question: str | None = None, queries=(), cells: int = 128, progress=None) -> list[PatternRun]:
    """Longformer (`config`), BigBird and LSH (sized by `equal_budget` when `equal`, else `patterns`) on `text`,
    each against the same weights under full attention. `layer`: whose attention picture to keep."""
    n = len(runner.tokenize(text, question).input_ids)
    say = progress or (lambda f, what: None)
    say(0.0, "full attention (the reference)")
    full = runner.run(text, config=full_attention(n), queries=queries, question=question, capture=False,
                      output_hidden_states=True)
    bb, ls = equal_budget(config, n) if equal or patterns is None else patterns
    runs = []
    say(0.25, LONGFORMER)
    res, seconds, mb = _timed(lambda: runner.run(text, config=config, queries=queries, question=question,
                                                 capture_layers=[layer], output_hidden_states=True), runner.device)
    weights = res.capture.weights(layer)
    fid = measure(full, res)
    runs.append(PatternRun(LONGFORMER, describe(None), longformer_keys(config, n, layer, runner.num_heads), seconds,
                           mb, fid.gap, fid.document, _picture_of_capture(weights, n, cells)))
    for i, pattern in enumerate((bb, ls)):
        say(0.5 + 0.25 * i, pattern.name)
        try:
            def run(pattern=pattern):
                with attention_pattern(pattern, layer, cells) as found:
                    return runner.run(text, queries=queries, question=question, capture=False,
                                      output_hidden_states=True), found
            (res, found), seconds, mb = _timed(run, runner.device)
        except ValueError as e:  # e.g. a text too short for BigBird's blocks
            runs.append(PatternRun(pattern.name, describe(pattern), float("nan"), float("nan"), None, float("nan"),
                                   {}, None, note=str(e)))
            continue
        fid = measure(full, res)
        keys, buckets = found["keys_per_query"], found.get("buckets")
        note = lsh.EMULATION_NOTE if isinstance(pattern, LSHPattern) else bigbird.EVAL_NOTE
        runs.append(PatternRun(pattern.name, describe(pattern), keys, seconds, mb, fid.gap, fid.document,
                               found["picture"].numpy(), None if buckets is None else buckets.numpy(), note))
    say(1.0, "done")
    return runs
