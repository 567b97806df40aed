"""Attention capture through forward hooks, scoped to one run.

`capture_attention(encoder)` registers a forward hook on each selected attention module and removes it in
`finally`. A hook records only the forward calls of its own run (the run passes its session as `capture=`), so
concurrent runs on one shared model never see each other's weights.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterable, Iterator

import torch

from ..attention.layout import AttentionWeights

_HOOK_LOCK = threading.Lock()  # registering/removing hooks mutates the module's hook dict


class Capture:
    """Captured attention of one run: plain tensors, layer -> AttentionWeights (split layout, see layout.py)."""

    def __init__(self, layers: dict[int, AttentionWeights] | None = None):
        self.layers: dict[int, AttentionWeights] = dict(layers or {})

    def _get(self, layer: int) -> AttentionWeights:
        if layer not in self.layers:
            have = sorted(self.layers) or "none"
            raise KeyError(f"layer {layer} was not captured (captured layers: {have}); "
                           f"run again with that layer in `capture_layers`")
        return self.layers[layer]

    def band(self, layer: int) -> torch.Tensor:
        """(H, n, W + 1): column c = key i + (c - W/2) * d_head; 0 out of range / padding / global; global rows 0."""
        return self._get(layer).band

    def to_global(self, layer: int) -> torch.Tensor:
        """(H, n, G): weight from each token to each global token (ascending); global rows 0."""
        return self._get(layer).to_global

    def from_global(self, layer: int) -> torch.Tensor:
        """(H, G, n): the global tokens' own attention rows."""
        return self._get(layer).from_global

    def weights(self, layer: int) -> AttentionWeights:
        return self._get(layer)

    @property
    def captured_layers(self) -> list[int]:
        return sorted(self.layers)

    def __bool__(self) -> bool:
        return bool(self.layers)


class CaptureSession:
    """What one run wants captured; filled by the hooks while the run's forward executes."""

    def __init__(self, layers: Iterable[int] | None, dtype: torch.dtype, device):
        self.layers = None if layers is None else frozenset(layers)
        self.dtype, self.device = dtype, device
        self.capture = Capture()

    def wants(self, layer: int) -> bool:
        return self.layers is None or layer in self.layers

    def _hook(self, module, args, *rest):
        """Registered with kwargs: rest is (kwargs, output). torch reads a module's hooks, then asks for each whether
        it takes kwargs: a run ending on another thread may remove its hook in between, and that hook is then called
        without them, rest = (output,): a finished run's hook, which keeps nothing."""
        if len(rest) != 2 or rest[0].get("capture") is not self:
            return  # another run's forward on the same shared module
        weights = rest[1][1]
        if weights is not None:
            self.capture.layers[module.layer_idx] = weights.to(device=self.device, dtype=self.dtype)


@contextmanager
def capture_attention(encoder, layers: Iterable[int] | None = None, dtype: torch.dtype = torch.float32,
                      device=None) -> Iterator[CaptureSession]:
    """Hook the attention modules of `encoder` (all layers, or `layers`) for one run.

    dtype: storage dtype of the captured weights (torch.float16 halves memory); device: where they are kept
    (None: where they were computed, e.g. stay on the GPU).
    """
    modules = encoder.attention_modules()
    if layers is not None:
        layers = sorted(set(layers))
        bad = [l for l in layers if not 0 <= l < len(modules)]
        if bad:
            raise ValueError(f"capture layers {bad} do not exist: the model has layers 0..{len(modules) - 1}")
    session = CaptureSession(layers, dtype, device)
    with _HOOK_LOCK:
        handles = [m.register_forward_hook(session._hook, with_kwargs=True)
                   for m in modules if session.wants(m.layer_idx)]
    try:
        yield session
    finally:
        with _HOOK_LOCK:
            for h in handles:
                h.remove()
