"""GPU benchmark (issue: GPU runner): lfviz vs Hugging Face's Longformer vs dense full attention, per length.

longformer-base shapes (12 layers, 12 heads x 64, hidden 768, window 512), random weights from a LongformerConfig
with positions for the longest length, one global token (position 0), batch 1, fp16 (or --dtype bf16).
Per length it prints:
- attention layer: lfviz's kernel given q, k, v (FlexAttention on CUDA) and lfviz's whole self-attention module
  (projections included), HF's LongformerSelfAttention (projections included), dense SDPA over the full n x n;
- whole forward: lfviz's encoder, HF's LongformerModel, the same weights with dense SDPA attention;
- capture: lfviz with every layer's attention captured (band + global, fp16, kept on the GPU), HF with
  output_attentions=True; time, and peak GPU memory above the weights and the inputs;
- dilation: lfviz's kernel and whole forward with dilation 2 on every head, over dilation 1;
- views: what the app does with a capture kept on the GPU (pooled band of one head, head statistics, attention
  received), so a document's views stay interactive.
Times are the median of --repeat runs after warm-up (compilation included in warm-up), wall clock between two
synchronisations. Results: bench/README.md. No timing in tests.

    .venv/bin/python bench/gpu_bench.py [--lengths 4096,16384,65536] [--dtype fp16] [--repeat 20] [--no-hf]
    .venv/bin/python bench/gpu_bench.py --quick     # a CPU dry run of every step at small sizes
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from transformers import LongformerConfig, LongformerModel

import lfviz
from lfviz.analysis import headstats
from lfviz.attention.banded import banded_attention
from lfviz.model.encoder import LongformerEncoder
from lfviz.figures.attention import pool
from lfviz.attention.layout import AttentionWeights
from lfviz.analysis.peak_memory import PeakMemory
from lfviz.analysis.scaling import dense_forward


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat: int) -> float:
    """Median wall-clock milliseconds of `fn` over `repeat` runs, each between two synchronisations."""
    times = []
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def measure(fn, device, repeat: int, warmup: int = 2) -> dict:
    """ms (median), and MB: peak memory above what was allocated before the first timed run (GPU: torch's
    allocator; CPU: process RSS)."""
    try:
        for _ in range(warmup):
            fn()
        with PeakMemory(device) as mem:
            fn()
        return {"ms": round(timed(fn, device, repeat), 3), "mb": None if mem.grown_mb is None else round(mem.grown_mb)}
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"ms": None, "mb": None, "note": "out of memory"}


def base_model(max_len: int, layers: int, hidden: int, heads: int, device, dtype) -> LongformerModel:
    cfg = LongformerConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                           intermediate_size=4 * hidden, max_position_embeddings=max_len + 2, attention_window=512,
                           pad_token_id=1, vocab_size=50265)
    torch.manual_seed(0)
    return LongformerModel(cfg, add_pooling_layer=False).eval().to(device, dtype)


def bench_length(n: int, hf: LongformerModel, enc: LongformerEncoder, args, device) -> dict:
    window, G = args.window, 1
    L, H = enc.num_layers, enc.num_heads
    D = enc.config.hidden_size
    hd = D // H
    rows: dict[str, dict] = {}
    ids = torch.randint(5, 50000, (n,), device=device, generator=torch.Generator(device).manual_seed(n))
    cfg = lfviz.AttentionConfig(window=window, global_tokens=(0,))
    cfg2 = cfg.replace(dilation=2)
    specs, specs2 = cfg.resolve(L, H), cfg2.resolve(L, H)
    hidden = torch.randn(n, D, device=device, dtype=args.torch_dtype)
    q, k, v, kg, vg = (torch.randn(H, n, hd, device=device, dtype=args.torch_dtype) for _ in range(5))
    qg = q[:, :G]
    att = enc.layers[0].attention

    with torch.inference_mode():
        # -- one attention layer
        rows["layer: lfviz kernel (q, k, v given)"] = measure(
            lambda: banded_attention(q, k, v, specs[0], (0,), None, qg, kg, vg), device, args.repeat)
        rows["layer: lfviz kernel, dilation 2"] = measure(
            lambda: banded_attention(q, k, v, specs2[0], (0,), None, qg, kg, vg), device, args.repeat)
        rows["layer: lfviz module (projections incl.)"] = measure(
            lambda: att(hidden, specs[0], (0,)), device, args.repeat)
        rows["layer: dense SDPA, full n x n (q, k, v given)"] = measure(
            lambda: F.scaled_dot_product_attention(q[None], k[None], v[None]), device, args.repeat)
        if hf is not None:
            mask = torch.zeros(1, n, device=device, dtype=args.torch_dtype)
            mask[0, 0] = 10000.0  # > 0: global (HF's encoder makes the same sign convention)
            hf_att = hf.encoder.layer[0].attention.self
            rows["layer: HF LongformerSelfAttention (projections incl.)"] = measure(
                lambda: hf_att(hidden[None], attention_mask=mask, is_index_masked=mask < 0,
                               is_index_global_attn=mask > 0, is_global_attn=True), device, args.repeat)

        # -- whole forward, then with capture
        rows["forward: lfviz"] = measure(lambda: enc(ids, specs, (0,)), device, args.repeat)
        rows["forward: lfviz, dilation 2"] = measure(lambda: enc(ids, specs2, (0,)), device, args.repeat)

        def captured():
            with lfviz.capture_attention(enc, dtype=torch.float16) as session:
                enc(ids, specs, (0,), capture=session)
            return session.capture

        rows["forward: lfviz, every layer captured (fp16, on the device)"] = measure(captured, device, args.repeat)
        rows["forward: dense SDPA attention, same weights"] = measure(lambda: dense_forward(enc, ids), device,
                                                                      args.repeat)
        if hf is not None:
            gmask = torch.zeros(1, n, dtype=torch.long, device=device)
            gmask[0, 0] = 1
            rows["forward: HF LongformerModel"] = measure(
                lambda: hf(input_ids=ids[None], global_attention_mask=gmask), device, args.repeat)
            rows["forward: HF, output_attentions=True"] = measure(
                lambda: hf(input_ids=ids[None], global_attention_mask=gmask, output_attentions=True), device,
                args.repeat)

        # -- what the app's views cost on a capture kept where it was computed
        cap = captured()
        w0 = cap.weights(0)
        rows["view: band of one head, pooled to 600 rows, to the CPU"] = measure(
            lambda: pool(w0.band[0], 600, 600, "max"), device, args.repeat)
        rows["view: head statistics, every layer and head"] = measure(
            lambda: headstats.stats_table(cap), device, max(1, args.repeat // 10), warmup=1)
        rows["view: attention received by every token, one layer"] = measure(
            lambda: headstats.received(AttentionWeights(w0.band, w0.to_global, w0.from_global, w0.dilation,
                                                        w0.global_tokens)).cpu(),  # not the memoised sums
            device, args.repeat)
        del cap, w0
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def extra_mb(rows: dict, a: str, b: str) -> str:
    x, y = rows.get(a, {}).get("mb"), rows.get(b, {}).get("mb")
    return f"{x - y:,}" if x is not None and y is not None else "-"


def ratio(rows: dict, a: str, b: str) -> str:
    x, y = rows.get(a, {}).get("ms"), rows.get(b, {}).get("ms")
    return f"{x / y:.2f}" if x and y else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", default="4096,16384,65536")
    ap.add_argument("--dtype", choices=["fp16", "bf16"], default="fp16")
    ap.add_argument("--window", type=int, default=512, help="two-sided (HF convention)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-hf", action="store_true", help="skip Hugging Face's model (it is the slow part)")
    ap.add_argument("--hf-max", type=int, default=65536, help="longest length HF runs at")
    ap.add_argument("--quick", action="store_true", help="CPU dry run: 2 layers, 256/1024 tokens, fp32")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    if args.quick:
        device, layers, hidden, heads = torch.device("cpu"), 2, 256, 4
        lengths, args.torch_dtype, args.repeat, args.window = [256, 1024], torch.float32, 2, 128
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU here: run on a GPU machine, or --quick for a CPU dry run")
        device, layers, hidden, heads = torch.device("cuda"), 12, 768, 12
        lengths = [int(x) for x in args.lengths.split(",")]
        args.torch_dtype = torch.float16 if args.dtype == "fp16" else torch.bfloat16
    hf = base_model(max(lengths), layers, hidden, heads, device, args.torch_dtype)
    enc = LongformerEncoder(hf).eval()  # shares HF's weights
    hf.config.attention_window = [args.window] * layers
    for layer in hf.encoder.layer:
        layer.attention.self.one_sided_attn_window_size = args.window // 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"# {datetime.date.today()} | {name} | torch {torch.__version__} | transformers {transformers.__version__}"
          f" | {layers} layers, {heads} heads x {hidden // heads}, window {args.window}, 1 global token, "
          f"{str(args.torch_dtype).replace('torch.', '')}")
    results = {}
    for n in lengths:
        rows = bench_length(n, None if args.no_hf or n > args.hf_max else hf, enc, args, device)
        results[n] = rows
        print(f"\n## {n:,} tokens\n\n| what | ms | peak MB |\n|---|---|---|")
        for what, r in rows.items():
            ms = "-" if r["ms"] is None else f"{r['ms']:.3f}"
            mb = "-" if r["mb"] is None else f"{r['mb']:,}"
            print(f"| {what} | {ms} | {mb}{' (' + r['note'] + ')' if r.get('note') else ''} |")
        print(f"\nratios: layer lfviz/HF {ratio(rows, 'layer: lfviz module (projections incl.)', 'layer: HF LongformerSelfAttention (projections incl.)')}"
              f", layer lfviz/dense {ratio(rows, 'layer: lfviz kernel (q, k, v given)', 'layer: dense SDPA, full n x n (q, k, v given)')}"
              f", forward lfviz/HF {ratio(rows, 'forward: lfviz', 'forward: HF LongformerModel')}"
              f", dilation 2/1: kernel {ratio(rows, 'layer: lfviz kernel, dilation 2', 'layer: lfviz kernel (q, k, v given)')}"
              f", forward {ratio(rows, 'forward: lfviz, dilation 2', 'forward: lfviz')}"
              f"; capture's extra peak MB {extra_mb(rows, 'forward: lfviz, every layer captured (fp16, on the device)', 'forward: lfviz')}",
              flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "transformers": transformers.__version__,
                       "date": str(datetime.date.today()), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
