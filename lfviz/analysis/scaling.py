"""Time and memory of one forward pass vs sequence length, measured live on this machine.

Methods (keys of METHODS), all on the same weights and the same random token ids:
- "lfviz":     lfviz's banded encoder with the given AttentionConfig (window, dilation, global tokens);
- "full":      dense full attention through `torch.nn.functional.scaled_dot_product_attention` (every token sees
               every token, local projections: what the original BERT-style model computes);
- "full_band": lfviz's banded kernel with a window covering the whole sequence (window = 2n);
- "hf":        Hugging Face's own `LongformerModel` on a private deep copy of the weights, with the config's
               windows set on every layer (HF has no dilation).

Memory is what the process grew by during the call (`peak_memory.PeakMemory`). `scores_mb` is the analytic size
of one layer's attention scores (all heads, fp32) if they were held at once.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import AttentionConfig
from .peak_memory import PeakMemory

METHODS = {
    "lfviz": "lfviz Longformer (sidebar config)",
    "full": "full attention (dense SDPA)",
    "full_band": "full attention (lfviz kernel, window 2n)",
    "hf": "Hugging Face LongformerModel",
}
DEFAULT_METHODS = ("lfviz", "full", "hf")
MAX_SCORE_BYTES = 4 << 30  # skip a method whose one-layer scores would exceed this if held at once
STOP_AFTER_S = 30.0  # once one run of a method takes longer, its longer lengths are skipped
MIN_POINT_S = 0.3  # points faster than this are repeated (up to MAX_RUNS) and the fastest run is kept
MAX_RUNS = 10

_ONE_AT_A_TIME = threading.Lock()  # measurements from two browser tabs would slow each other down
Progress = Callable[[int, int, str], None]  # (done, total, what is running now)


# -- the dense reference path ----------------------------------------------------------------------------------
def dense_forward(encoder, input_ids: torch.Tensor) -> torch.Tensor:
    """Full attention over lfviz's `LongformerEncoder` weights: input_ids (n,) -> last hidden state (n, D).

    Same embeddings, projections and feed-forward blocks as the encoder; attention is dense SDPA with the local
    projections, which equals the encoder with a window covering the sequence and no global token.
    """
    hidden = encoder.embeddings(input_ids=input_ids.view(1, -1))[0]  # (n, D)
    n, D = hidden.shape
    for layer in encoder.layers:
        att = layer.attention
        q, k, v = (att._heads(getattr(att, name)(hidden))[None] for name in ("query", "key", "value"))  # (1, H, n, hd)
        context = F.scaled_dot_product_attention(q, k, v)[0].transpose(0, 1).reshape(n, D)
        attn = layer.attention_output(context, hidden)
        hidden = layer.output(layer.intermediate(attn), attn)
    return hidden


# -- Hugging Face's implementation on a private copy -------------------------------------------------------------
def hf_copy(model) -> torch.nn.Module:
    """A deep copy of the HF LongformerModel inside `model` (its `.longformer` for task models), so that
    setting windows never touches the model other browser tabs share."""
    base = getattr(model, "longformer", model)
    return copy.deepcopy(base).eval()


def set_hf_windows(hf_model, windows: tuple[int, ...]) -> None:
    """Set the two-sided window of every layer in both places HF reads it (config and each self-attention)."""
    hf_model.config.attention_window = list(windows)
    for layer, w in zip(hf_model.encoder.layer, windows):
        layer.attention.self.one_sided_attn_window_size = w // 2


def hf_skip_reason(windows: tuple[int, ...]) -> str | None:
    """Why HF cannot run these per-layer windows, or None."""
    top = max(windows)
    bad = sorted({w for w in windows if top % w})
    if bad:
        return (f"HF pads to a multiple of the largest window ({top}) and needs every layer's window to divide it; "
                f"{', '.join(map(str, bad))} do not")
    return None


# -- analytic sizes --------------------------------------------------------------------------------------------
def score_bytes(method: str, n: int, num_heads: int, windows: tuple[int, ...], num_global: int) -> int:
    """fp32 attention scores of the largest layer, all heads, as the method's layout holds them.

    Longformer layouts hold n x (W + 1) band cells + the G global columns + G global rows of n; HF's rows are
    padded to a multiple of the largest window; full attention holds n x n.
    """
    if method in ("full", "full_band"):
        return num_heads * 4 * n * n
    W, G = max(windows), num_global
    rows = -(-n // W) * W if method == "hf" else n
    return num_heads * 4 * (rows * (W + 1 + G) + G * rows)


# -- measuring -------------------------------------------------------------------------------------------------
def random_ids(n: int, vocab_size: int, pad_id: int | None, seed: int = 0) -> torch.Tensor:
    """(n,) random token ids in the vocabulary, never the padding id (HF would treat it as padding)."""
    g = torch.Generator().manual_seed(seed + n)
    ids = torch.randint(0, vocab_size, (n,), generator=g)
    if pad_id is not None:
        ids[ids == pad_id] = (pad_id + 1) % vocab_size
    return ids


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(call, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    call()
    _sync(device)
    return time.perf_counter() - t0


def _run_point(method: str, runner, config: AttentionConfig, ids: torch.Tensor, hf_model, repeats: int,
               min_point_s: float) -> dict:
    """seconds, runs, memory_mb and note of one (method, length); a failure (out of memory, HF's shape checks)
    becomes a note."""
    n, top = len(ids), max(s.window for s in config.resolve(runner.num_layers, runner.num_heads))
    call, note = _make_call(method, runner, config, ids, hf_model)
    notes = [note]
    dropped = sum(1 for g in config.global_tokens if g >= n)
    if dropped and method in ("lfviz", "hf"):
        notes.append(f"{dropped} global position(s) >= {n} left out")
    if method == "hf" and n % top:
        notes.append(f"HF pads to {-(-n // top) * top:,}")
    try:
        times, mem = _time_point(call, runner.device, repeats, min_point_s)
    except (RuntimeError, ValueError, AssertionError) as e:
        return dict(note=f"failed: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}")
    return dict(seconds=min(times), runs=len(times), memory_mb=None if mem is None else round(mem, 3),
                note="; ".join(filter(None, notes)))


def _time_point(call, device: torch.device, repeats: int, min_point_s: float) -> tuple[list[float], float | None]:
    """Seconds of each run, and the memory grown during the first (from a trimmed baseline)."""
    with PeakMemory(device) as probe:
        times = [_timed(call, device)]
    # fast points repeat up to a fraction of a second: noise is largest where runs are short
    while len(times) < repeats or (sum(times) < min_point_s and len(times) < MAX_RUNS):
        times.append(_timed(call, device))
    return times, probe.grown_mb


def _skip_reason(method: str, n: int, max_tokens: int, hf_reason: str | None, sbytes: int, max_score_bytes: int,
                 previous_s: float | None, stop_after_s: float) -> str | None:
    """Why a point is not run, or None to run it."""
    if n > max_tokens:
        return f"the model has positions for {max_tokens:,} tokens"
    if method == "hf" and hf_reason:
        return hf_reason
    if sbytes > max_score_bytes:
        return (f"one layer's scores would take {sbytes / 2**30:.1f} GiB if held at once "
                f"(limit {max_score_bytes / 2**30:.1f} GiB)")
    if previous_s is not None:
        return f"skipped: the previous length already took {previous_s:.1f} s (limit {stop_after_s:g} s)"
    return None


def _make_call(method: str, runner, config: AttentionConfig, ids: torch.Tensor, hf_model):
    """A no-argument callable that runs one forward pass, and a note on what it runs."""
    n = len(ids)
    enc = runner.encoder
    globals_ = tuple(g for g in sorted(config.global_tokens) if g < n)
    if method == "lfviz":
        specs = config.resolve(runner.num_layers, runner.num_heads)
        return (lambda: enc(ids, specs, globals_)), ""
    if method == "full":
        return (lambda: dense_forward(enc, ids)), ""
    if method == "full_band":
        specs = AttentionConfig(window=2 * n).resolve(runner.num_layers, runner.num_heads)
        return (lambda: enc(ids, specs)), ""
    if method == "hf":
        batch = ids.view(1, n)
        mask = torch.ones_like(batch)
        gmask = torch.zeros_like(batch)
        gmask[0, list(globals_)] = 1
        note = "HF has no dilation: ran with dilation 1" if config.uses_dilation else ""
        return (lambda: hf_model(input_ids=batch, attention_mask=mask, global_attention_mask=gmask)), note
    raise ValueError(f"unknown method {method!r}: choose from {', '.join(METHODS)}")


def measure(runner, lengths, methods=DEFAULT_METHODS, config: AttentionConfig | None = None, repeats: int = 1,
            progress: Progress | None = None, seed: int = 0, max_score_bytes: int = MAX_SCORE_BYTES,
            stop_after_s: float = STOP_AFTER_S, min_point_s: float = MIN_POINT_S) -> list[dict]:
    """Time and memory of one forward pass of `runner`'s model per (method, length).

    lengths: token counts; methods: keys of METHODS; config: the Longformer configuration (default: window 512);
    repeats: runs per point at least (seconds = the fastest; points faster than `min_point_s` in all run again,
    up to MAX_RUNS). Each method runs once untimed at the shortest length first.
    Returns one row per (method, length): method (label), key, tokens, seconds, runs, memory_mb, scores_mb, note.
    A point that cannot or should not run has seconds = memory_mb = None and a note saying why.
    """
    config = config if config is not None else AttentionConfig()
    lengths = sorted({int(n) for n in lengths})
    if not lengths or lengths[0] < 1:
        raise ValueError(f"lengths must be positive token counts, got {lengths}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown or no methods {unknown}: choose from {', '.join(METHODS)}")
    methods = [m for m in METHODS if m in set(methods)]  # fixed order: the plot's colours stay put
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    specs = config.resolve(runner.num_layers, runner.num_heads)
    windows = tuple(s.window for s in specs)
    device = runner.device
    H = runner.num_heads
    hf_model, hf_reason = None, None
    if "hf" in methods:
        hf_reason = hf_skip_reason(windows)
        if hf_reason is None:
            hf_model = hf_copy(runner.model)
            set_hf_windows(hf_model, windows)

    total = len(methods) * len(lengths)
    done = 0
    rows: list[dict] = []
    slow: dict[str, float] = {}
    if progress and _ONE_AT_A_TIME.locked():
        progress(0, total, "waiting for a measurement in another tab to finish")
    with _ONE_AT_A_TIME, torch.inference_mode():
        warmed: set[str] = set()
        for n in lengths:
            ids = random_ids(n, runner.config.vocab_size, runner.config.pad_token_id, seed).to(device)
            G = sum(1 for g in config.global_tokens if g < n)
            for m in methods:
                if progress:
                    progress(done, total, f"{METHODS[m]} at {n:,} tokens")
                sbytes = score_bytes(m, n, H, windows, G)
                row = dict(method=METHODS[m], key=m, tokens=n, seconds=None, runs=0, memory_mb=None,
                           scores_mb=round(sbytes / 2**20, 3), note="")
                skip = _skip_reason(m, n, runner.max_tokens, hf_reason, sbytes, max_score_bytes, slow.get(m),
                                    stop_after_s)
                if skip:
                    row["note"] = skip
                else:
                    if m not in warmed:  # first-call costs (allocations, kernel choice) are not the method's
                        warmed.add(m)
                        try:
                            _make_call(m, runner, config, ids[: lengths[0]], hf_model)[0]()
                        except (RuntimeError, ValueError, AssertionError):
                            pass  # the timed run below reports it
                    row.update(_run_point(m, runner, config, ids, hf_model, repeats, min_point_s))
                    if row["seconds"] is not None and row["seconds"] > stop_after_s:
                        slow[m] = row["seconds"]
                rows.append(row)
                done += 1
    if progress:
        progress(done, total, "done")
    return rows


def growth_exponents(rows: list[dict], points: int = 3) -> dict[str, float]:
    """Per method, k in time ~ n^k: the least-squares log-log slope over its `points` longest measured lengths
    (the long end is where attention dominates; more than two points damp one noisy run)."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r["tokens"], r["seconds"]) for r in rows
                     if r["method"] == method and r["seconds"] is not None and r["seconds"] > 0)[-points:]
        if len(pts) >= 2 and pts[0][0] != pts[-1][0]:
            x = [math.log(n) for n, _ in pts]
            y = [math.log(t) for _, t in pts]
            mx, my = sum(x) / len(x), sum(y) / len(y)
            out[method] = (sum((a - mx) * (b - my) for a, b in zip(x, y))
                           / sum((a - mx) ** 2 for a in x))
    return out


def crossover(rows: list[dict], faster: str = "lfviz", than: str = "full") -> dict:
    """Where method `faster` starts to beat method `than` (keys of METHODS) on the measured lengths.

    Returns {"tokens": the crossing length interpolated in log-log between the two measured lengths around it
    (None when the curves do not cross), "below": True when `faster` is faster at every measured length, False
    when it is slower at every one, None when they cross}. The last sign change counts (noise at short lengths
    may flip it early)."""
    t = {}
    for r in rows:
        if r.get("key") in (faster, than) and r.get("seconds"):
            t.setdefault(r["tokens"], {})[r["key"]] = r["seconds"]
    pts = sorted((n, v[faster] / v[than]) for n, v in t.items() if faster in v and than in v)
    if not pts:
        return {"tokens": None, "below": None}
    if all(ratio < 1 for _, ratio in pts):
        return {"tokens": None, "below": True}
    if all(ratio >= 1 for _, ratio in pts) or pts[-1][1] >= 1:
        return {"tokens": None, "below": False}
    i = max(j for j in range(1, len(pts)) if pts[j - 1][1] >= 1 > pts[j][1])
    (n0, r0), (n1, r1) = pts[i - 1], pts[i]
    x0, x1, y0, y1 = math.log(n0), math.log(n1), math.log(r0), math.log(r1)
    return {"tokens": round(math.exp(x0 + (0 - y0) * (x1 - x0) / (y1 - y0))), "below": None}
