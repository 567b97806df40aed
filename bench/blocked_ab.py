"""One layer of the blocked kernel, today's against a git revision's, in one process, interleaved (issue 23 part 2).

`band_core` on `cpu_bench.py`'s shapes: 4,096 tokens, 12 heads x 32, window 512 (w = 256), one global token
(position 0), capture on and off. Prints both versions' best wall time and best process CPU time (with one torch
thread the CPU time is the steadier figure on a shared machine: time spent waiting for a core is not in it), the
ratios new / old, and the largest difference between their answers.

    .venv/bin/python bench/blocked_ab.py [--rev HEAD] [--threads 1] [--repeat 9]
"""
from __future__ import annotations

import argparse
import time

import torch

from cpu_bench import kernel_at
from lfviz.attention import blocked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rev", default="HEAD", help="git revision of the old lfviz/attention/blocked.py")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    old = kernel_at(args.rev)
    g = torch.Generator().manual_seed(0)
    h, m, hd, w, G = 12, 4096, 32, 256, 1
    q, k, v = (torch.randn(1, h, m, hd, generator=g) / 3 for _ in range(3))
    ok = torch.ones(1, m, dtype=torch.bool)
    ok[0, 0] = False  # the global token's key lives in the global columns
    gk, gv = torch.randn(h, G, hd, generator=g), torch.randn(h, G, hd, generator=g)
    a = old.band_core(q, k, v, ok, w, gk, gv, True)
    b = blocked.band_core(q, k, v, ok, w, gk, gv, True)
    diff = max((x - y).abs().max().item() for x, y in zip(a[:4], b[:4]))
    del a, b
    wall, cpu = {}, {}
    load = open("/proc/loadavg").read().split()[0]
    for _ in range(args.repeat):
        for name, mod in (("old", old), ("new", blocked)):
            for cap in (True, False):
                t, c = time.perf_counter(), time.process_time()
                r = mod.band_core(q, k, v, ok, w, gk, gv, cap)
                t, c = time.perf_counter() - t, time.process_time() - c
                del r
                key = name, cap
                wall[key], cpu[key] = min(wall.get(key, t), t), min(cpu.get(key, c), c)
    print(f"torch threads {args.threads}, load average {load} (start) {open('/proc/loadavg').read().split()[0]} "
          f"(end); old = {args.rev}; max |new - old| over out, band, to_global, received: {diff:.1e}")
    for cap in (True, False):
        label = "capture on " if cap else "capture off"
        print(f"{label}: wall {wall['old', cap] * 1e3:.1f} -> {wall['new', cap] * 1e3:.1f} ms "
              f"({wall['new', cap] / wall['old', cap]:.2f}x), CPU {cpu['old', cap] * 1e3:.1f} -> "
              f"{cpu['new', cap] * 1e3:.1f} ms ({cpu['new', cap] / cpu['old', cap]:.2f}x)")


if __name__ == "__main__":
    main()
