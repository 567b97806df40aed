"""Causal LM bench (issue: causal LM; issue 23 part 3): SmolLM2-135M on the CPU, 2,048 tokens of the article,
window 256 (each token sees the 128 previous ones), 4 sink tokens, every layer captured in fp16 - against Hugging
Face's sdpa forward given the equivalent additive 4D mask (which captures nothing).

Attention's own cost, two ways, both in this one process:
- by floors: each forward minus its floor, the same forward with attention replaced by nothing (an attention
  function that hands the queries back as its output, no score computed). lfviz's floor is its run (decoder, then
  losses and top-k from the output head) with capture off; HF's is its forward giving the logits. Each cost is the
  difference of two ~4 s runs, so the arms run in rounds (every arm once a round, the order rotated each round):
  the cost from each arm's best, and each round's own paired differences (median and range over the rounds).
- inside the forward: the wall time summed over the 30 calls of each model's attention function (lfviz's
  `longformer_attention` with its capture, HF's `sdpa_attention_forward`), timed by a wrapper. No floor is
  subtracted; what attention does to the rest of the forward (cache pressure, fresh pages) is not in it.
Target: lfviz's attention cost <= 0.25x HF's (printed both ways: lfviz / HF and HF / lfviz). Also the first
(conversion) and cached load times, and where the peak memory goes (the process's peak RSS growth during each arm's
first timed run; target lfviz <= HF).

"lfviz, kernel on 2 threads" is lfviz with the causal band kernel's query blocks shared between 2 pool threads
(`causal_band.WORKERS`; default 1), in every round too. Last, one layer alone (layer 5's real q, k, v, capture on in
fp16, best of 15, interleaved): the kernel's knobs, workers x CHUNK_BYTES, for a quiet machine to settle.

--against REV also runs lfviz as it was at git revision REV (its `lfviz/` package extracted into a temporary folder
and imported under another name, on its own copy of the model) as one more arm of every round: before/after in one
process.

    .venv/bin/python bench/causal_bench.py [--tokens 2048] [--rounds 7] [--against REV] [--fresh-cache]
"""
import argparse
import importlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AttentionInterface, AutoModelForCausalLM
from transformers.integrations.sdpa_attention import sdpa_attention_forward

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import lfviz  # noqa: E402
from lfviz.analysis.peak_memory import PeakMemory  # noqa: E402
from lfviz.attention import causal_band  # noqa: E402
from lfviz.attention.banded import banded_attention  # noqa: E402
from lfviz.attention.mask import dense_mask  # noqa: E402
from lfviz.model import causal_lm, smollm2  # noqa: E402
from lfviz.model.causal_runner import CausalRunner, logit_rows  # noqa: E402

FLOOR = "lfviz_bench_floor"
spent = {}  # attention implementation name -> seconds spent in it since the last reset
grabbed = {}  # layer 5's q, k, v and scaling, from the first lfviz call that sees it


def no_attention(module, query, key, value, attention_mask=None, **kwargs):
    """Attention replaced by nothing: the queries (1, H, n, hd) handed back as the output (1, n, H, hd)."""
    return query.transpose(1, 2), None


def timed(name, fn):
    """`fn` registered as attention implementation `name`, its calls' wall time summed into spent[name]."""
    def attention(module, query, key, value, *args, **kwargs):
        if name == "lfviz" and module.layer_idx == 5 and not grabbed:
            grabbed.update(q=query[0].clone(), k=key[0].clone(), v=value[0].clone(), scaling=kwargs.get("scaling"))
        t = time.perf_counter()
        try:
            return fn(module, query, key, value, *args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
    AttentionInterface.register(name, attention)
    return name


AttentionInterface.register(FLOOR, no_attention)


def load_against(rev: str, tmp: str):
    """lfviz's package at git revision `rev`, imported as `lfviz_at_<rev>` (its imports inside are relative).
    Importing it registers its attention function under lfviz's name: the current one is registered again after."""
    name = "lfviz_at_" + "".join(c if c.isalnum() else "_" for c in rev)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "lfviz"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    shutil.move(os.path.join(tmp, "lfviz"), os.path.join(tmp, name))
    sys.path.insert(0, tmp)
    old = importlib.import_module(name)
    old_lm = importlib.import_module(name + ".model.causal_lm")
    old_runner = importlib.import_module(name + ".model.causal_runner")
    AttentionInterface.register(causal_lm.ATTENTION, causal_lm.longformer_attention)
    return old, old_lm, old_runner


def spread(xs):
    return f"median {statistics.median(xs):.2f}, range {min(xs):.2f}-{max(xs):.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=7, help="rounds of every arm once (order rotated each round)")
    ap.add_argument("--against", metavar="REV", help="also run lfviz as it was at this git revision")
    ap.add_argument("--fresh-cache", action="store_true", help="also time the first load (conversion) in a temp cache")
    args = ap.parse_args()
    os.chdir(ROOT)
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
    fresh = lambda: AutoModelForCausalLM.from_pretrained(smollm2.cache_folder(), attn_implementation="sdpa").eval()
    hf, floor_model = fresh(), fresh()
    floor_runner = CausalRunner(runner.model_id, floor_model, runner.tokenizer, runner.device)
    floor_model.set_attn_implementation(FLOOR)  # after the runner switched it to lfviz's attention
    runner.model.set_attn_implementation(timed("lfviz", causal_lm.longformer_attention))
    hf.set_attn_implementation(timed("hf", sdpa_attention_forward))
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
        "lfviz, kernel on 2 threads": lambda: with_workers(2, calls["lfviz"]),
        "hf": lambda: hf_logits(hf),
        "hf floor": lambda: hf_logits(floor_model),
    }
    tmp = tempfile.TemporaryDirectory()
    if args.against:
        old, old_lm, old_runner_mod = load_against(args.against, tmp.name)
        old_cfg = old.AttentionConfig(window=256, global_tokens=(0, 1, 2, 3))
        old_runner = old_runner_mod.CausalRunner(runner.model_id, fresh(), runner.tokenizer, runner.device)
        old_runner.model.set_attn_implementation(timed("lfviz " + args.against, old_lm.longformer_attention))
        calls["lfviz " + args.against] = lambda: old_runner.run(input_ids=ids, config=old_cfg, capture=True,
                                                                capture_dtype=torch.float16)
    def with_workers(workers, call):
        before = causal_band.WORKERS
        causal_band.WORKERS = workers
        try:
            return call()
        finally:
            causal_band.WORKERS = before

    for call in calls.values():  # warm-up
        call()

    names = list(calls)
    times = {name: [] for name in names}  # per round
    inside = {name: [] for name in names}  # seconds inside the attention function, per round
    mem = {}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            probe = PeakMemory(torch.device("cpu")) if name not in mem else None
            if probe is not None:
                probe.__enter__()
            spent.clear()
            t = time.perf_counter()
            out = calls[name]()
            times[name].append(time.perf_counter() - t)
            inside[name].append(sum(spent.values()))
            if probe is not None:
                probe.__exit__(None, None, None)
                mem[name] = probe.grown_mb
            del out
    best = {name: min(v) for name, v in times.items()}

    res = calls["lfviz"]()
    ppl_hf = float(torch.nn.functional.cross_entropy(hf_logits(hf)[0, :-1], x[0, 1:]).exp())
    kept = sum(w.stored.numel() * w.stored.element_size() + w.to_global.numel() * w.to_global.element_size()
               + w.from_global.numel() * w.from_global.element_size()
               + (0 if w.received is None else w.received.numel() * 4)  # column sums: derived on read since 2026-12-03
               for w in res.capture.layers.values()) / 2**20
    rows = logit_rows(runner.config.vocab_size)
    print(f"{n} tokens, window 256 (128 previous), sinks 0-3, every layer captured in fp16 ({kept:.0f} MiB kept); "
          f"{args.rounds} rounds, load average now {open('/proc/loadavg').read().split()[0]}")
    for name in names:
        attn = f", in attention {min(inside[name]):.3f} s" if max(inside[name]) else ""
        print(f"  {name:26s} best {best[name]:.2f} s ({spread(times[name])}){attn}, "
              f"peak RSS growth {mem[name]:.0f} MB")
    print(f"perplexity: lfviz {res.predictions.rows[0]['score']:.2f}, HF {ppl_hf:.2f}")

    lf_arms = [a for a in names if a.startswith("lfviz") and a != "lfviz floor"]
    hf_cost = best["hf"] - best["hf floor"]
    hf_rounds = [a - b for a, b in zip(times["hf"], times["hf floor"])]
    print(f"attention's own cost by floors (target lfviz / HF <= 0.25): HF {hf_cost:.2f} s from the bests "
          f"(per round: {spread(hf_rounds)})")
    for arm in lf_arms:
        cost = best[arm] - best["lfviz floor"]
        per = [a - b for a, b in zip(times[arm], times["lfviz floor"])]
        ratio = [a / b for a, b in zip(per, hf_rounds)]
        print(f"  {arm:26s} {cost:.2f} s from the bests, ratio {cost / hf_cost:.2f} (HF / it {hf_cost / cost:.1f}x); "
              f"per round cost {spread(per)}, ratio {spread(ratio)}")
    print("attention's own cost inside the forward (the attention function's calls summed, no floor):")
    for arm in lf_arms:
        ratio = [a / b for a, b in zip(inside[arm], inside["hf"])]
        print(f"  {arm:26s} {min(inside[arm]):.3f} s vs HF {min(inside['hf']):.3f} s (bests): ratio "
              f"{min(inside[arm]) / min(inside['hf']):.3f} (HF / it {min(inside['hf']) / min(inside[arm]):.1f}x); "
              f"per round {spread(ratio)}")
    print(f"whole forward ratio lfviz / HF: {best['lfviz'] / best['hf']:.2f}")
    print(f"memory: lfviz {mem['lfviz']:.0f} MB = floor {mem['lfviz floor']:.0f} (output head: {rows} rows of "
          f"{runner.config.vocab_size:,} fp32 logits = {rows * runner.config.vocab_size * 4 / 2**20:.0f} MiB a chunk) "
          f"+ captures kept {kept:.0f} MiB + the rest {mem['lfviz'] - mem['lfviz floor'] - kept * 1.048576:.0f} MB; "
          f"HF {mem['hf']:.0f} MB (its (n, V) logits: {n * runner.config.vocab_size * 4 / 2**20:.0f} MiB); "
          f"target lfviz <= HF")
    tmp.cleanup()
    kernel_knobs(cfg.resolve(runner.num_layers, runner.num_heads)[5], cfg.global_tokens)


def kernel_knobs(spec, global_tokens, repeat=15):
    """Layer 5 alone through `banded_attention` as `causal_lm` calls it, capture on in fp16: workers x CHUNK_BYTES."""
    q, k, v, scale = grabbed["q"], grabbed["k"], grabbed["v"], grabbed["scaling"]
    g = list(global_tokens)
    knobs = list(dict.fromkeys((w, c) for w in (1, 2) for c in (causal_band.CHUNK_BYTES, 1 << 20, 4 << 20)))
    saved = causal_band.WORKERS, causal_band.CHUNK_BYTES
    t = {knob: [] for knob in knobs}
    with torch.inference_mode():
        for _ in range(repeat):
            for knob in knobs:
                causal_band.WORKERS, causal_band.CHUNK_BYTES = knob
                start = time.perf_counter()
                banded_attention(q, k, v, spec, tuple(g), None, q[:, g], k, v, need_weights=True, causal=True,
                                 scale=scale, weights_dtype=torch.float16, received=False)
                t[knob].append(time.perf_counter() - start)
    causal_band.WORKERS, causal_band.CHUNK_BYTES = saved
    print(f"one layer (layer 5, capture on in fp16), best of {repeat}, interleaved; default workers {saved[0]}, "
          f"CHUNK_BYTES {saved[1] >> 20} MiB:")
    for (workers, chunk), ts in t.items():
        print(f"  workers {workers}, CHUNK_BYTES {chunk / 2**20:g} MiB: best {min(ts) * 1e3:.1f} ms "
              f"(median {statistics.median(ts) * 1e3:.1f})")


if __name__ == "__main__":
    main()
