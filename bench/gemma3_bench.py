"""Gemma 3 270M bench (issue: a real sliding-window LLM offline): 2,000 tokens of the article with BOS, the native
pattern (15 sliding layers of 512 keys, 3 full), every layer captured in fp16 - against Hugging Face's own sdpa
forward with its native masks (which captures nothing). Best of 3, interleaved, in one process; memory: the peak
RSS growth of the first run of each, and the whole process's peak (model included) for lfviz alone in a child
process. Also the cached load and the copy experiment's time on the copy-test sample (reusing its first run, and
with --experiment-whole also as whole runs, for the same numbers).

    .venv/bin/python bench/gemma3_bench.py [--tokens 2000] [--skip-experiment] [--experiment-whole]
"""
import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch
from transformers import AutoModelForCausalLM

import lfviz
from lfviz.analysis.peak_memory import PeakMemory
from lfviz.model import gemma3, packaged

CHILD = """
import sys, torch, lfviz
def hwm():  # VmHWM: this process's own peak (ru_maxrss would carry the parent's across fork and exec)
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
r = lfviz.load_runner("gemma3-270m", device="cpu")
ids = r.tokenizer(open("assets/samples/article.txt", encoding="utf-8").read()).input_ids[:int(sys.argv[1])]
before = hwm()
res = r.run(input_ids=ids, capture=True, capture_dtype=torch.float16)
print(hwm(), before)
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--skip-experiment", action="store_true")
    ap.add_argument("--experiment-whole", action="store_true", help="also time the experiment with whole runs")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    t = time.perf_counter()
    runner = lfviz.load_runner(gemma3.GEMMA3, device="cpu")
    print(f"cached load: {time.perf_counter() - t:.1f} s")
    hf = AutoModelForCausalLM.from_pretrained(packaged.cache_folder(gemma3.MODEL), attn_implementation="sdpa",
                                              dtype=torch.float32).eval()
    ids = runner.tokenizer(open("assets/samples/article.txt", encoding="utf-8").read()).input_ids[:args.tokens]
    x = torch.tensor(ids)[None]

    def run_lfviz():
        return runner.run(input_ids=ids, capture=True, capture_dtype=torch.float16)

    def run_hf():
        with torch.inference_mode():
            return hf(x).logits

    times, memory = {"lfviz": [], "hf": []}, {}
    for i in range(3):
        for name, call in (("lfviz", run_lfviz), ("hf", run_hf)):
            with PeakMemory(torch.device("cpu")) as probe:
                t = time.perf_counter()
                out = call()
                times[name].append(time.perf_counter() - t)
            memory.setdefault(name, probe.grown_mb)
            del out
    res = run_lfviz()
    ppl_hf = float(torch.nn.functional.cross_entropy(run_hf()[0, :-1], x[0, 1:]).exp())
    kept = sum(w.stored.numel() * 2 for w in res.capture.layers.values()) / 2**20
    print(f"{len(ids)} tokens, native pattern, all 18 layers captured in fp16 ({kept:.0f} MiB of attention kept)")
    print(f"lfviz: {min(times['lfviz']):.2f} s, peak RSS growth {memory['lfviz']:.0f} MB, "
          f"perplexity {res.predictions.rows[0]['score']:.2f}")
    print(f"HF sdpa, native masks (no capture): {min(times['hf']):.2f} s, peak RSS growth {memory['hf']:.0f} MB, "
          f"perplexity {ppl_hf:.2f}")
    print(f"ratio lfviz / HF: {min(times['lfviz']) / min(times['hf']):.2f} (target <= 1.0)")
    del hf
    peak, before = map(float, subprocess.run([sys.executable, "-c", CHILD, str(args.tokens)], capture_output=True,
                                             text=True, check=True).stdout.split()[-2:])
    print(f"lfviz alone in a fresh process: peak RSS {peak:.0f} MB (model loaded: {before:.0f} MB) (target <= 3 GB)")
    if not args.skip_experiment:
        from lfviz.analysis import ablation
        from lfviz.samples import get_sample

        ids = runner.tokenize(get_sample("copy_test").text).input_ids
        span = ablation.repeated_span(ids)
        for reuse in (True, False) if args.experiment_whole else (True,):
            t = time.perf_counter()
            rows = ablation.layer_ablation(runner, ids, span=span, reuse=reuse)
            print(f"copy experiment ({len(ids)} tokens, span {span}, {len(rows)} runs, "
                  f"{'reusing the first run' if reuse else 'whole runs'}): {time.perf_counter() - t:.1f} s "
                  f"(load average {open('/proc/loadavg').read().split()[0]})")
            print(json.dumps({r.name: [round(r.perplexity, 4), round(r.span_perplexity, 4)] for r in rows}))
    print(f"bench process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
