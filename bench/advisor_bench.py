"""Placement advisor bench (issue: fidelity and the advisor): for each sample document and both embedded models,
at k = 1, 4, 16 global tokens and windows 128 and 512, the gap to full attention the advisor reaches and the best
preset at the same k reaches (first k tokens, question tokens, sentence starts spread, evenly spaced), and the
advisor's time on this machine. Gap (0 = as full attention): MiniLM, 1 - cos of the pooled embedding; SmolLM2,
perplexity / full-attention perplexity - 1. Also the k = 8 timing row on the longest MiniLM document.

SmolLM2 reads the first --causal-tokens tokens of each document (default 1,024: each of its runs costs seconds on
2 cores); MiniLM reads each document whole.

    .venv/bin/python bench/advisor_bench.py [--out bench/advisor_results.json] [--models embedded,smollm2]
        [--documents contract,qa_passage] [--windows 128] [--ks 1,4,16]   (a subset of the rows)
"""
import argparse
import json
import platform
import time

import torch

import lfviz
from lfviz.analysis.advisor import advise
from lfviz.analysis.fidelity import attention_from_afar
from lfviz.config import AttentionConfig
from lfviz.samples import list_samples

from _common import first_tokens  # bench/, on the path when a script here runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/advisor_results.json")
    ap.add_argument("--models", default="embedded,smollm2")
    ap.add_argument("--causal-tokens", type=int, default=1024)
    ap.add_argument("--documents", default=None, help="sample ids, comma-separated (default: every sample)")
    ap.add_argument("--windows", default="128,512")
    ap.add_argument("--ks", default=None, help="budgets, comma-separated (default: 1,4,16 and the k = 8 row)")
    args = ap.parse_args()
    documents = args.documents.split(",") if args.documents else None
    print(f"machine: {platform.machine()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    rows = []
    for model in args.models.split(","):
        runner = lfviz.load_runner(model, device="cpu")
        for sample in list_samples():
            if documents is not None and sample.id not in documents:
                continue
            text = first_tokens(runner, sample.text, args.causal_tokens) if runner.task == "causal-lm" else sample.text
            question = sample.question if runner.task != "causal-lm" else None
            n = len(runner.tokenize(text, question).input_ids)
            for window in (int(w) for w in args.windows.split(",")):
                cfg = AttentionConfig(window=window)
                t = time.perf_counter()
                reference = attention_from_afar(runner, text, cfg, question)
                ref_s = time.perf_counter() - t
                ks = ((8,) if model == "embedded" and sample.id == "contract" and window == 128 else ()) + (1, 4, 16)
                for k in (tuple(int(x) for x in args.ks.split(",")) if args.ks else ks):
                    t = time.perf_counter()
                    a = advise(runner, text, cfg, k, question=question, reference=reference)
                    advise_s = time.perf_counter() - t
                    best = min(a.presets, key=lambda r: r["gap"])
                    row = {"model": model, "document": sample.id, "tokens": n, "window": window, "k": k,
                           "greedy gap": a.greedy_gap, "picks": len(a.picks), "best preset": best["strategy"],
                           "preset gap": best["gap"], "no global gap": a.base_gap, "runs": a.runs,
                           "advisor s (with reference)": round(ref_s + advise_s, 1), "reference s": round(ref_s, 1)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    with open(args.out, "w") as f:
                        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
