"""Longformer vs BigBird vs Reformer LSH on the same weights (issue: the pattern comparison): for both embedded
models and the three sample documents, at equal budget (BigBird and LSH sized to the Longformer configuration's
keys per query), the distance from full attention, one forward's time and the process's peak memory growth.

Longformer: window 256 with the first token global (MiniLM) or the first 4 tokens (SmolLM2, as sinks). SmolLM2
reads the first --causal-tokens tokens (default 1,024). BigBird runs on its block-sparse kernel
(`attention.block_sparse`), LSH on lfviz's generic sparse path (query chunks of a dense masked softmax).

--timing: BigBird's time against the Longformer kernel's at the same keys per query, in one process, interleaved,
best of --repeat: one whole forward each (as `run_patterns` runs it: one layer captured or pictured) under
Longformer, BigBird on the generic path (the reference, the code before the block-sparse kernel; with
--generic-once timed once, unwarmed, as it is 10-30x slower) and BigBird on the block-sparse kernel; then the
attention call alone on the model's q, k, v shapes (random values).

    .venv/bin/python bench/patterns_bench.py [--out bench/patterns_results.json]
    .venv/bin/python bench/patterns_bench.py --timing [--repeat 5] [--generic-once] [--run NAME] [--out bench/patterns_timing.json]
"""
import argparse
import dataclasses
import json
import platform
import time

import torch

import lfviz
from lfviz.analysis.pattern_runs import equal_budget, run_patterns
from lfviz.attention import sparse
from lfviz.attention.banded import banded_attention
from lfviz.config import AttentionConfig
from lfviz.samples import list_samples

from _common import first_tokens  # bench/, on the path when a script here runs


def kernels(pattern) -> list:
    """BigBird's variants to time: the generic path and the block-sparse kernel (only the former before it)."""
    if not hasattr(pattern, "kernel"):
        return [("BigBird generic", pattern)]
    return [(f"BigBird {k}", dataclasses.replace(pattern, kernel=k)) for k in ("generic", "block-sparse")]


def best_of(calls: dict, repeat: int, once=()) -> dict:
    """{name: best seconds}: every call once to warm up, then `repeat` rounds, the calls interleaved. The calls
    named in `once` (the slow generic path) run in the first round only, without a warm-up."""
    for name, fn in calls.items():
        if name not in once:
            fn()
    best = {name: float("inf") for name in calls}
    for i in range(repeat):
        for name, fn in calls.items():
            if i and name in once:
                continue
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def documents(models, args):
    """Each model's runner, its config (window `args.window`; one global token, or 4 sinks on a causal LM) and each
    sample as the benches run it: (model, runner, causal, cfg, sample id, text, question, tokens)."""
    for model in models:
        runner = lfviz.load_runner(model, device="cpu")
        causal = runner.task == "causal-lm"
        cfg = AttentionConfig(window=args.window, global_tokens=(0, 1, 2, 3) if causal else (0,))
        for sample in list_samples():
            text = first_tokens(runner, sample.text, args.causal_tokens) if causal else sample.text
            question = None if causal else sample.question
            n = len(runner.tokenize(text, question).input_ids)
            yield model, runner, causal, cfg, sample.id, text, question, n


def timing(args):
    """The rows are added to args.out's earlier runs (a {run name: rows} file) under --run (default: the date)."""
    rows, runs = [], {}
    try:
        with open(args.out) as f:
            runs = json.load(f)
    except FileNotFoundError:
        pass
    if not isinstance(runs, dict):
        raise SystemExit(f"{args.out} is not a {{run name: rows}} file: give another --out")
    run = args.run or time.strftime("run of %Y-%m-%d %H:%M UTC", time.gmtime())
    for model, runner, causal, cfg, doc, text, question, n in documents(args.models, args):
        bb, _ = equal_budget(cfg, n)
        once = ("BigBird generic",) if args.generic_once else ()
        calls = {"Longformer": lambda: runner.run(text, config=cfg, question=question, capture_layers=[0],
                                                  output_hidden_states=True)}
        for name, pattern in kernels(bb):
            def run(pattern=pattern):
                with attention_pattern_picture(pattern):
                    runner.run(text, question=question, capture=False, output_hidden_states=True)
            calls[name] = run
        forward = best_of(calls, args.repeat, once)
        # the attention call alone, on the model's shapes: Longformer's band + globals vs BigBird's blocks
        H, hd = runner.num_heads, runner.config.hidden_size // runner.num_heads
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(H, n, hd, generator=g) for _ in range(3))
        spec, glob = cfg.resolve(runner.num_layers, H)[0], list(cfg.global_tokens)
        kcalls = {"Longformer": lambda: banded_attention(q, k, v, spec, glob, None, q[:, glob], k, v, causal=causal,
                                                         impl="blocked")}
        for name, pattern in kernels(bb):
            kcalls[name] = lambda pattern=pattern: run_layer(pattern, q, k, v, causal)
        kernel = best_of(kcalls, args.repeat, once)
        row = {"model": model, "document": doc, "tokens": n, "block": bb.block, "random": bb.num_random,
               "forward s": {a: round(x, 3) for a, x in forward.items()},
               "forward x Longformer": {a: round(x / forward["Longformer"], 2) for a, x in forward.items()},
               "kernel s": {a: round(x, 4) for a, x in kernel.items()},
               "kernel x Longformer": {a: round(x / kernel["Longformer"], 2) for a, x in kernel.items()},
               "loadavg": open("/proc/loadavg").read().split()[:3]}
        rows.append(row)
        print(json.dumps(row), flush=True)
        runs[run] = rows
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=1)


def attention_pattern_picture(pattern):
    """The pattern active, layer 0 pictured (16 cells), as `run_patterns` runs it."""
    return sparse.attention_pattern(pattern, 0, 16)


def run_layer(pattern, q, k, v, causal):
    with sparse.attention_pattern(pattern):
        return sparse.run_active(1, q, k, v, causal=causal)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--causal-tokens", type=int, default=1024)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--timing", action="store_true", help="BigBird's kernels against Longformer's (see the docstring)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--run", default=None, help="--timing: the name its rows get in --out (default: the date)")
    ap.add_argument("--generic-once", action="store_true", help="--timing: the generic path timed once, unwarmed")
    ap.add_argument("--models", nargs="+", default=["embedded", "smollm2"], help="--timing: which models")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    if args.timing:
        args.out = args.out or "bench/patterns_timing.json"
        return timing(args)
    args.out = args.out or "bench/patterns_results.json"
    rows = []
    for model, runner, causal, cfg, doc, text, question, n in documents(("embedded", "smollm2"), args):
        for r in run_patterns(runner, text, cfg, layer=0, question=question, cells=16):
            row = {"model": model, "document": doc, "tokens": n, "pattern": r.name, "settings": r.settings,
                   "keys per query": round(r.keys_per_query, 1), "distance": r.gap,
                   "seconds": round(r.seconds, 2), "memory MB": None if r.memory_mb is None else round(r.memory_mb)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
