"""Longformer vs BigBird vs Reformer LSH on the same weights (issue: the pattern comparison): for both embedded
models and the three sample documents, at equal budget (BigBird and LSH sized to the Longformer configuration's
keys per query), the distance from full attention, one forward's time and the process's peak memory growth.

Longformer: window 256 with the first token global (MiniLM) or the first 4 tokens (SmolLM2, as sinks). SmolLM2
reads the first --causal-tokens tokens (default 1,024). BigBird and LSH run on lfviz's generic sparse path (query
chunks of a dense masked softmax on the CPU): their time is that path's, not a block-sparse kernel's.

    .venv/bin/python bench/patterns_bench.py [--out bench/patterns_results.json]
"""
import argparse
import json
import platform

import torch

import lfviz
from lfviz.analysis.pattern_runs import run_patterns
from lfviz.config import AttentionConfig
from lfviz.samples import list_samples

from _common import first_tokens  # bench/, on the path when a script here runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/patterns_results.json")
    ap.add_argument("--causal-tokens", type=int, default=1024)
    ap.add_argument("--window", type=int, default=256)
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    rows = []
    for model in ("embedded", "smollm2"):
        runner = lfviz.load_runner(model, device="cpu")
        causal = runner.task == "causal-lm"
        cfg = AttentionConfig(window=args.window, global_tokens=(0, 1, 2, 3) if causal else (0,))
        for sample in list_samples():
            text = first_tokens(runner, sample.text, args.causal_tokens) if causal else sample.text
            question = None if causal else sample.question
            runs = run_patterns(runner, text, cfg, layer=0, question=question, cells=16)
            n = len(runner.tokenize(text, question).input_ids)
            for r in runs:
                row = {"model": model, "document": sample.id, "tokens": n, "pattern": r.name, "settings": r.settings,
                       "keys per query": round(r.keys_per_query, 1), "distance": r.gap,
                       "seconds": round(r.seconds, 2), "memory MB": None if r.memory_mb is None else round(r.memory_mb)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            with open(args.out, "w") as f:
                json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
