"""Placement study bench (issue: a study over a corpus): documents per second in this process and on a local Ray
(Ray Data actor pool, one model per actor) on this machine, for the same corpus and strategies; and whether the two
gave the same numbers.

Corpus: the bundled samples cut into --docs documents of varied length (300 to 1,800 tokens' worth of text),
written as JSONL. Strategies: none, first, sentence-starts, evenly:8 (no advisor: it multiplies the runs per
document by ~15 and measures the model, not the engine).

    .venv/bin/python bench/study_bench.py [--docs 24] [--window 128] [--actors 2]
"""
import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from lfviz.config import AttentionConfig
from lfviz.samples import list_samples
from lfviz.study.job import run_study


def corpus(folder: Path, docs: int) -> Path:
    texts = [s.text for s in list_samples()]
    lines = []
    for i in range(docs):
        text = texts[i % len(texts)]
        size = 1500 + (i * 2731) % 8000  # characters: about 300 to 1,900 tokens
        start = (i * 977) % max(1, len(text) - size)
        lines.append(json.dumps({"id": f"doc{i:03d}", "text": text[start:start + size]}))
    path = folder / "corpus.jsonl"
    path.write_text("\n".join(lines))
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=24)
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--strategies", default="none,first,sentence-starts,evenly:8")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    cfg = AttentionConfig(window=args.window)
    with tempfile.TemporaryDirectory() as tmp:
        path = corpus(Path(tmp), args.docs)
        results = {}
        for name, options in [("in-process, 2 threads", dict(threads=2)),
                              ("in-process, 1 thread", dict(threads=1)),
                              (f"Ray local, {args.actors} actors x 1 CPU (1 thread each)",
                               dict(engine="ray", actors=args.actors, cpus_per_actor=1, threads=1))]:
            t = time.perf_counter()
            rows = run_study(path, Path(tmp) / f"{len(results)}.parquet", config=cfg, strategies=args.strategies,
                             **options)
            seconds = time.perf_counter() - t
            results[name] = rows.drop(columns=["seconds"])
            print(f"{name}: {args.docs} documents in {seconds:.1f} s = {args.docs / seconds:.2f} documents/s "
                  f"(model load and, for Ray, its start included)", flush=True)
        same = list(results.values())
        print("Ray rows equal the 1-thread in-process rows:", same[2].equals(same[1]))
        print("2-thread rows equal 1-thread rows:", same[0].equals(same[1]),
              f"(largest gap difference {(same[0]['gap'] - same[1]['gap']).abs().max():.2e})")


if __name__ == "__main__":
    main()
