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


def dense_bert(n):
    """The source MiniLM as a plain BERT with positions copied up to n, full attention through SDPA."""
    import json

    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    from lfviz.model.loading import embedded_model_dir

    src = embedded_model_dir()
    cfg = BertConfig(**{**json.loads((src / "config.json").read_text()), "max_position_embeddings": n})
    cfg._attn_implementation = "sdpa"
    state = load_file(str(src / "model.safetensors"))
    pos = state["embeddings.position_embeddings.weight"]
    state["embeddings.position_embeddings.weight"] = pos.repeat(-(-n // pos.shape[0]), 1)[:n]
    state.pop("embeddings.position_ids", None)
    model = BertModel(cfg, add_pooling_layer=False).eval()
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("pooler.")}, strict=False)
    return model


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

    bert = dense_bert(n)

    def run_dense():
        with torch.inference_mode():
            return bert(ids[None])

    run_hf(), run_lfviz(), run_dense()  # warm-up
    # equality on this very input, so the comparison is between equal answers
    a, b = run_hf(), run_lfviz()
    err = (a.last_hidden_state[0] - b.last_hidden_state).abs().max().item()
    t_hf = t_lf = t_nocap = t_dense = float("inf")
    for _ in range(args.repeat):  # interleaved so drift hits both
        t_hf = min(t_hf, best_of(run_hf, 1))
        t_lf = min(t_lf, best_of(run_lfviz, 1))
        t_nocap = min(t_nocap, best_of(lambda: run_lfviz(False), 1))
        t_dense = min(t_dense, best_of(run_dense, 1))
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}")
    print(f"tokens {n}, window {args.window}, 1 global token, max |hidden lfviz - HF| = {err:.2e}")
    print(f"HF LongformerModel (output_attentions=True): {t_hf:.3f} s")
    print(f"lfviz run, capture on (all layers, fp32):    {t_lf:.3f} s")
    print(f"lfviz run, capture off:                      {t_nocap:.3f} s")
    print(f"dense full attention (BERT, SDPA, no capture): {t_dense:.3f} s")
    print(f"ratio lfviz/HF: {t_lf / t_hf:.2f} (target <= 0.5); lfviz without capture / dense: {t_nocap / t_dense:.2f}")


if __name__ == "__main__":
    main()
