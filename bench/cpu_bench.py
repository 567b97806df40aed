"""CPU benchmark (issue: engine): lfviz vs Hugging Face's LongformerModel on the same weights and shapes.

Embedded model (converted all-MiniLM-L6-v2: 6 layers, 12 heads x 32), 4096 tokens, window 512, one global token
(position 0), attention captured on every layer. HF runs with output_attentions=True. Both in this process,
interleaved, best of --repeat. Prints the ratio lfviz / HF (target <= 0.5).

    .venv/bin/python bench/cpu_bench.py [--tokens 4096] [--repeat 3] [--threads N]
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

import lfviz


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    runner = lfviz.load_runner("embedded", device="cpu")
    n = args.tokens
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 29000, (n,), generator=g)
    ids[0], ids[-1] = runner.tokenizer.cls_token_id, runner.tokenizer.sep_token_id
    cfg = lfviz.AttentionConfig(window=args.window, global_tokens=(0,))

    hf = runner.model  # the same LongformerModel whose weights lfviz runs
    hf.config.attention_window = [args.window] * hf.config.num_hidden_layers
    for layer in hf.encoder.layer:
        layer.attention.self.one_sided_attn_window_size = args.window // 2
    gmask = torch.zeros(1, n, dtype=torch.long)
    gmask[0, 0] = 1

    def run_hf():
        with torch.inference_mode():
            return hf(ids[None], global_attention_mask=gmask, output_attentions=True)

    def run_lfviz(capture=True):
        return runner.run(input_ids=ids, config=cfg, capture=capture)

    run_hf(), run_lfviz()  # warm-up
    # equality on this very input, so the comparison is between equal answers
    a, b = run_hf(), run_lfviz()
    err = (a.last_hidden_state[0] - b.last_hidden_state).abs().max().item()
    t_hf = t_lf = t_nocap = float("inf")
    for _ in range(args.repeat):  # interleaved so drift hits both
        t_hf = min(t_hf, best_of(run_hf, 1))
        t_lf = min(t_lf, best_of(run_lfviz, 1))
        t_nocap = min(t_nocap, best_of(lambda: run_lfviz(False), 1))
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}")
    print(f"tokens {n}, window {args.window}, 1 global token, max |hidden lfviz - HF| = {err:.2e}")
    print(f"HF LongformerModel (output_attentions=True): {t_hf:.3f} s")
    print(f"lfviz run, capture on (all layers, fp32):    {t_lf:.3f} s")
    print(f"lfviz run, capture off:                      {t_nocap:.3f} s")
    print(f"ratio lfviz/HF: {t_lf / t_hf:.2f} (target <= 0.5)")


if __name__ == "__main__":
    main()
