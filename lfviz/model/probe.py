"""Each layer's queries and keys during a run, handed to a callback: what an analysis needs to compute attention
statistics (e.g. what full attention gives to keys a window cannot reach) without storing n x n weights.

    with probe_queries_keys(runner, probe):   # probe(layer, q, k, scale); q, k: (H, n, hd)
        runner.run(text, config=full_attention, capture=False)

Only the calling thread's runs reach the probe: the app's other sessions share the model and run on.
Encoders: the local projections (what non-global queries and every key use). Causal LMs: after RoPE, with each
key/value head repeated for its query heads, and the model's softcap and sinks passed as `softcap=`, `sinks=`.
`lazy=True`: q and k come as functions of no argument that give them: an encoder projects them again only when
they are asked for (a probe that gets them elsewhere, e.g. from `dense.observe`, saves two projections a layer).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from .capture import _HOOK_LOCK
from .causal_lm import query_key_probe

Probe = Callable[[int, torch.Tensor, torch.Tensor, float], None]


@contextmanager
def probe_queries_keys(runner, probe: Probe, lazy: bool = False) -> Iterator[None]:
    """Call `probe(layer, q, k, scale)` once per layer of every run this thread makes inside the block (lazy: q and
    k as functions that give them, see above)."""
    if getattr(runner, "causal", False):
        given = (lambda layer, q, k, scale, **kw: probe(layer, lambda: q, lambda: k, scale, **kw)) if lazy else probe
        with query_key_probe(given):
            yield
        return
    me = threading.get_ident()

    def hook(module, args, kwargs=None):
        if threading.get_ident() != me or kwargs is None:  # kwargs None: removed meanwhile (`CaptureSession._hook`)
            return  # another session's run on the shared model
        hidden = args[0] if args else kwargs["hidden"]
        q, k = (lambda: module.project(hidden, module.query)), (lambda: module.project(hidden, module.key))
        probe(module.layer_idx, *((q, k) if lazy else (q(), k())), module.head_dim ** -0.5)

    with _HOOK_LOCK:
        handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in runner.encoder.attention_modules()]
    try:
        yield
    finally:
        with _HOOK_LOCK:
            for h in handles:
                h.remove()
