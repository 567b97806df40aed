"""Causal LM bench (issue: causal LM; issue 23 part 3): SmolLM2-135M on the CPU, 2,048 tokens of the article,
window 256 (each token sees the 128 previous ones), 4 sink tokens, every layer captured in fp16 - against Hugging
Face's sdpa forward given the equivalent additive 4D mask (which captures nothing).

Attention's own cost is each forward minus its floor: the same forward with attention replaced by nothing (an
attention function that hands the queries back as its output, no score computed). lfviz's floor is its run
(decoder, then losses and top-k from the output head) with capture off; HF's is its forward giving the logits.
Target: lfviz's attention cost <= 0.25x HF's. Also the first (conversion) and cached load times, and where the
peak memory goes. Best of 3, interleaved; memory is the process's peak RSS growth during the first timed run.

    .venv/bin/python bench/causal_bench.py [--tokens 2048] [--fresh-cache] [--repeat 3]
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AttentionInterface, AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lfviz  # noqa: E402
from _common import interleaved  # noqa: E402
from lfviz.attention.mask import dense_mask  # noqa: E402
from lfviz.model import smollm2  # noqa: E402
from lfviz.model.causal_runner import CausalRunner, logit_rows  # noqa: E402

FLOOR = "lfviz_bench_floor"


def no_attention(module, query, key, value, attention_mask=None, **kwargs):
    """Attention replaced by nothing: the queries (1, H, n, hd) handed back as the output (1, n, H, hd)."""
    return query.transpose(1, 2), None


AttentionInterface.register(FLOOR, no_attention)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fresh-cache", action="store_true", help="also time the first load (conversion) in a temp cache")
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"load average {open('/proc/loadavg').read().split()[0]}")
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
    floor_model = AutoModelForCausalLM.from_pretrained(smollm2.cache_folder(), attn_implementation="sdpa").eval()
    floor_runner = CausalRunner(runner.model_id, floor_model, runner.tokenizer, runner.device)
    floor_model.set_attn_implementation(FLOOR)  # after the runner switched it to lfviz's attention
    text = open("assets/samples/article.txt", encoding="utf-8").read()
    ids = runner.tokenizer(text, add_special_tokens=False).input_ids[:args.tokens]
    n = len(ids)
    cfg = lfviz.AttentionConfig(window=256, global_tokens=(0, 1, 2, 3))
    mask = dense_mask(cfg.resolve(runner.num_layers, runner.num_heads)[0], n, cfg.global_tokens, causal=True)[:1]
    additive = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))[None]  # (1, 1, n, n)
    x = torch.tensor(ids)[None]

    def hf_logits(model):
        with torch.inference_mode():
            return model(x, attention_mask=additive).logits

    calls = {
        "lfviz": lambda: runner.run(input_ids=ids, config=cfg, capture=True, capture_dtype=torch.float16),
        "lfviz, capture off": lambda: runner.run(input_ids=ids, config=cfg, capture=False),
        "lfviz floor": lambda: floor_runner.run(input_ids=ids, config=cfg, capture=False),
        "hf": lambda: hf_logits(hf),
        "hf floor": lambda: hf_logits(floor_model),
    }
    for call in calls.values():  # warm-up
        call()
    t, mem = interleaved(calls, args.repeat)
    res = calls["lfviz"]()
    ppl_hf = float(torch.nn.functional.cross_entropy(hf_logits(hf)[0, :-1], x[0, 1:]).exp())
    kept = sum(w.stored.numel() * w.stored.element_size() + w.to_global.numel() * w.to_global.element_size()
               + w.from_global.numel() * w.from_global.element_size()
               + (0 if w.received is None else w.received.numel() * 4)  # column sums: derived on read since 2026-12-03
               for w in res.capture.layers.values()) / 2**20
    rows = logit_rows(runner.config.vocab_size)
    print(f"{n} tokens, window 256 (128 previous), sinks 0-3, every layer captured in fp16 ({kept:.0f} MiB kept)")
    for name in calls:
        print(f"  {name:20s} {t[name]:.2f} s, peak RSS growth {mem[name]:.0f} MB")
    print(f"perplexity: lfviz {res.predictions.rows[0]['score']:.2f}, HF {ppl_hf:.2f}")
    a_lf, a_hf = t["lfviz"] - t["lfviz floor"], t["hf"] - t["hf floor"]
    print(f"attention's own cost: lfviz {a_lf:.2f} s (capture off {t['lfviz, capture off'] - t['lfviz floor']:.2f} s), "
          f"HF {a_hf:.2f} s; ratio {a_lf / a_hf:.2f} (target <= 0.25)")
    print(f"  with HF's floor for both, as first measured: ({t['lfviz']:.2f} - {t['hf floor']:.2f}) / "
          f"({t['hf']:.2f} - {t['hf floor']:.2f}) = {(t['lfviz'] - t['hf floor']) / a_hf:.2f}")
    print(f"whole forward ratio lfviz / HF: {t['lfviz'] / t['hf']:.2f}")
    print(f"memory: lfviz {mem['lfviz']:.0f} MB = floor {mem['lfviz floor']:.0f} (output head: {rows} rows of "
          f"{runner.config.vocab_size:,} fp32 logits = {rows * runner.config.vocab_size * 4 / 2**20:.0f} MiB a chunk) "
          f"+ captures kept {kept:.0f} MiB + the rest {mem['lfviz'] - mem['lfviz floor'] - kept * 1.048576:.0f} MB; "
          f"HF {mem['hf']:.0f} MB (its (n, V) logits: {n * runner.config.vocab_size * 4 / 2**20:.0f} MiB); "
          f"target lfviz <= HF")


if __name__ == "__main__":
    main()
