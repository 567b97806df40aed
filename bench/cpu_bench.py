"""CPU benchmark (issue: engine): lfviz vs Hugging Face's LongformerModel on the same weights and shapes.

Embedded model (converted all-MiniLM-L6-v2: 6 layers, 12 heads x 32), 4096 tokens, window 512, one global token
(position 0), attention captured on every layer. HF runs with output_attentions=True. Both in this process,
interleaved, best of --repeat. Prints the ratio lfviz / HF (target <= 0.25, issue 23).

--breakdown also times, in the same interleaved loop, lfviz's forward with parts taken away, to show where the
time goes: without the attention modules (embeddings, output projections, layer norms, MLPs: the floor), with
the projections but no attention (the kernel replaced by handing the queries back), without the global token,
and with capture off.

--against REV also times lfviz with the blocked kernel (`lfviz/attention/blocked.py`) as it was at git revision REV,
in the same loop: the kernel's before/after on the whole run, in one process. With --plain-linear that arm also
runs the encoder's dense layers (and the q/k/v projections, where they use it) through their own modules (MKL's
sgemm) instead of `attention/linear.py`'s oneDNN product: before/after of issue 23's third pass.

    .venv/bin/python bench/cpu_bench.py [--tokens 4096] [--repeat 3] [--threads N] [--breakdown] [--against REV
                                        [--plain-linear]]
"""
from __future__ import annotations

import argparse
import pathlib
import platform
import subprocess
import time
import types
from contextlib import contextmanager, nullcontext

import torch

import lfviz
from lfviz.attention import self_attention


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@contextmanager
def replaced(owner, name, value):
    """`owner.name` is `value` inside the block."""
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def no_attention_module(self, hidden, *args, **kwargs):  # the floor: no projection, no attention
    return hidden, None


def no_kernel(q, k, v, *args, **kwargs):  # projections made, attention replaced by handing the queries back
    return q, None


def kernel_at(rev: str) -> types.ModuleType:
    """`lfviz.attention.blocked` as it was at git revision `rev`, loaded beside today's."""
    root = pathlib.Path(__file__).resolve().parents[1]
    src = subprocess.check_output(["git", "-C", str(root), "show", f"{rev}:lfviz/attention/blocked.py"], text=True)
    mod = types.ModuleType(f"lfviz.attention.blocked_at_{rev}")
    mod.__package__ = "lfviz.attention"
    exec(compile(src, f"blocked.py@{rev}", "exec"), mod.__dict__)
    return mod


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
    ap.add_argument("--breakdown", action="store_true", help="also time lfviz with parts taken away")
    ap.add_argument("--against", metavar="REV", help="also time lfviz with the blocked kernel of git revision REV")
    ap.add_argument("--plain-linear", action="store_true",
                    help="with --against: that arm's encoder dense layers through their modules, not oneDNN")
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

    def floor():
        with replaced(self_attention.BandedSelfAttention, "forward", no_attention_module):
            return run_lfviz(False)

    def projections():
        with replaced(self_attention, "banded_attention", no_kernel):
            return run_lfviz(False)

    no_global = lfviz.AttentionConfig(window=args.window)
    parts = {"floor": floor, "projections": projections,
             "no global": lambda: runner.run(input_ids=ids, config=no_global, capture=False)} if args.breakdown else {}
    if args.against:
        from lfviz.attention import banded
        from lfviz.model import encoder

        old = kernel_at(args.against)
        def plain(x, lin, gelu=False):  # the modules' own forward (MKL's sgemm), the GELU a second pass
            return torch.nn.functional.gelu(lin(x)) if gelu else lin(x)

        plain = plain if args.plain_linear else encoder.linear

        def at_rev(capture):
            qkv = replaced(self_attention, "linear", plain) if hasattr(self_attention, "linear") else nullcontext()
            with replaced(banded, "blocked_local", old.blocked_local), replaced(encoder, "linear", plain), qkv:
                return run_lfviz(capture)

        arm = f"kernel at {args.against}" + (" + plain linear" if args.plain_linear else "")
        parts[f"{arm}, capture on"] = lambda: at_rev(True)
        parts[f"{arm}, capture off"] = lambda: at_rev(False)
    run_hf(), run_lfviz(), run_dense()  # warm-up
    for call in parts.values():
        call()
    # equality on this very input, so the comparison is between equal answers
    a, b = run_hf(), run_lfviz()
    err = (a.last_hidden_state[0] - b.last_hidden_state).abs().max().item()
    t_hf = t_lf = t_nocap = t_dense = float("inf")
    t_parts = {name: float("inf") for name in parts}
    load = open("/proc/loadavg").read().split()[0]
    for _ in range(args.repeat):  # interleaved so drift hits both
        t_hf = min(t_hf, best_of(run_hf, 1))
        t_lf = min(t_lf, best_of(run_lfviz, 1))
        t_nocap = min(t_nocap, best_of(lambda: run_lfviz(False), 1))
        t_dense = min(t_dense, best_of(run_dense, 1))
        for name, call in parts.items():
            t_parts[name] = min(t_parts[name], best_of(call, 1))
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"torch {torch.__version__}, load average {load} (start) {open('/proc/loadavg').read().split()[0]} (end)")
    print(f"tokens {n}, window {args.window}, 1 global token, max |hidden lfviz - HF| = {err:.2e}")
    print(f"HF LongformerModel (output_attentions=True): {t_hf:.3f} s")
    print(f"lfviz run, capture on (all layers, fp32):    {t_lf:.3f} s")
    print(f"lfviz run, capture off:                      {t_nocap:.3f} s")
    print(f"dense full attention (BERT, SDPA, no capture): {t_dense:.3f} s")
    print(f"ratio lfviz/HF: {t_lf / t_hf:.2f} (target <= 0.25); lfviz without capture / dense: {t_nocap / t_dense:.2f}")
    for name, t in t_parts.items():
        if name.startswith("kernel at"):
            now = t_lf if name.endswith("on") else t_nocap
            print(f"lfviz run, {name}: {t:.3f} s (today's kernel {now:.3f} s: {now / t:.2f}x; "
                  f"ratio to HF {t / t_hf:.2f})")
    if args.breakdown:
        f, p, ng = t_parts["floor"], t_parts["projections"], t_parts["no global"]
        print(f"breakdown of lfviz's {t_lf:.3f} s: floor (embeddings, output projections, layer norms, MLPs) {f:.3f} s; "
              f"q/k/v and global projections {p - f:.3f} s; attention kernel and global rows {t_nocap - p:.3f} s "
              f"(of which the global token: {t_nocap - ng:.3f} s); capture (weights written, received sums, "
              f"hooks) {t_lf - t_nocap:.3f} s")


if __name__ == "__main__":
    main()
