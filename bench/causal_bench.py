"""Causal LM bench (issue: causal LM): SmolLM2-135M on the CPU, 2,048 tokens of the article, window 256 (each
token sees the 128 previous ones), 4 sink tokens, every layer captured in fp16 - against Hugging Face's sdpa
forward given the equivalent additive 4D mask (which captures nothing). Also the first (conversion) and cached
load times. Best of 3, interleaved; memory is the process's peak RSS growth during the first run of each.

    .venv/bin/python bench/causal_bench.py [--tokens 2048] [--fresh-cache]
"""
import argparse
import os
import platform
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM

import lfviz
from lfviz.analysis.peak_memory import PeakMemory
from lfviz.attention.mask import dense_mask
from lfviz.model import smollm2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--fresh-cache", action="store_true", help="also time the first load (conversion) in a temp cache")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    if args.fresh_cache:
        real = os.environ.get("LFVIZ_CACHE")
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["LFVIZ_CACHE"] = tmp
            t = time.perf_counter()
            lfviz.load_runner("smollm2", device="cpu")
            print(f"first load (GGUF dequantised, saved as safetensors): {time.perf_counter() - t:.1f} s")
        if real is None:
            os.environ.pop("LFVIZ_CACHE")
        else:
            os.environ["LFVIZ_CACHE"] = real
    t = time.perf_counter()
    runner = lfviz.load_runner("smollm2", device="cpu")
    print(f"cached load: {time.perf_counter() - t:.2f} s")
    hf = AutoModelForCausalLM.from_pretrained(smollm2.cache_folder(), attn_implementation="sdpa").eval()
    text = open("assets/samples/article.txt", encoding="utf-8").read()
    ids = runner.tokenizer(text, add_special_tokens=False).input_ids[:args.tokens]
    n = len(ids)
    cfg = lfviz.AttentionConfig(window=256, global_tokens=(0, 1, 2, 3))
    mask = dense_mask(cfg.resolve(runner.num_layers, runner.num_heads)[0], n, cfg.global_tokens, causal=True)[:1]
    additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))[None]  # (1, 1, n, n)
    x = torch.tensor(ids)[None]

    def run_lfviz():
        return runner.run(input_ids=ids, config=cfg, capture=True, capture_dtype=torch.float16)

    def run_hf():
        with torch.inference_mode():
            return hf(x, attention_mask=additive).logits

    run_lfviz(), run_hf()  # warm-up
    times, memory = {"lfviz": [], "hf": []}, {}
    for i in range(3):
        for name, call in (("lfviz", run_lfviz), ("hf", run_hf)):
            with PeakMemory(torch.device("cpu")) as probe:
                t = time.perf_counter()
                out = call()
                times[name].append(time.perf_counter() - t)
            memory.setdefault(name, probe.grown_mb)
    res = run_lfviz()
    ppl_hf = float(torch.nn.functional.cross_entropy(run_hf()[0, :-1], x[0, 1:]).exp())
    print(f"{n} tokens, window 256 (128 previous), sinks 0-3, every layer captured in fp16 "
          f"({sum(w.stored.numel() * 2 for w in res.capture.layers.values()) / 2**20:.0f} MiB of band kept)")
    print(f"lfviz: {min(times['lfviz']):.2f} s, peak RSS growth {memory['lfviz']:.0f} MB, "
          f"perplexity {res.predictions.rows[0]['score']:.2f}")
    print(f"HF sdpa + 4D mask (no capture): {min(times['hf']):.2f} s, peak RSS growth {memory['hf']:.0f} MB, "
          f"perplexity {ppl_hf:.2f}")
    print(f"ratio lfviz / HF: {min(times['lfviz']) / min(times['hf']):.2f} (target <= 0.6)")


if __name__ == "__main__":
    main()
