"""Reused host memory for captured attention (the CPU's band tensors), so a run does not fault in fresh pages.

A 4,096-token band of 12 heads is 100 MB of fp32 per layer. Freshly allocated, the kernel's first write into it
page-faults every 4 KB page (~25k faults, ~30 ms a layer on this project's 2-core VM, against ~5 ms to write the
same bytes into memory already touched). This pool keeps the slabs of earlier captures and hands one out again
once nothing outside the pool refers to it any more (the run's result was dropped); otherwise it maps a new one.

- Only CPU tensors of at least `MIN_BYTES` come from here; smaller ones are plain `torch.empty`.
- A tensor from the pool is an ordinary tensor over an anonymous mmap slab (`torch.frombuffer` of a memoryview):
  while any tensor, view or NumPy array of it lives, its storage holds the memoryview, and the slab is not handed
  out again.
- Slabs nobody uses are kept up to `IDLE_LIMIT` bytes in all (the oldest dropped first); `release()` drops them.
"""
from __future__ import annotations

import math
import mmap
import threading
import weakref

import torch

MIN_BYTES = 8 << 20  # smaller tensors come from the ordinary allocator (their pages are reused anyway)
IDLE_LIMIT = 1 << 30  # bytes of unused slabs kept for the next runs
_GRAIN = 1 << 20  # slab sizes are rounded up to this, so slightly different lengths can share slabs
_SLACK = 1.25  # a slab is reused for a request of at least 1 / _SLACK of its (rounded) size

_lock = threading.Lock()


class _Slab:
    """An anonymous mapping and a weak reference to the memoryview the tensors handed out hold (through their
    storage): alive while any of them is."""

    def __init__(self, nbytes: int):
        self.map = mmap.mmap(-1, nbytes)
        self.view = lambda: None

    @property
    def size(self) -> int:
        return len(self.map)

    def in_use(self) -> bool:
        return self.view() is not None

    def tensor(self, shape: tuple[int, ...], dtype: torch.dtype, numel: int) -> torch.Tensor:
        mv = memoryview(self.map)
        self.view = weakref.ref(mv)
        return torch.frombuffer(mv, dtype=dtype, count=numel).view(shape)  # its storage now holds mv


_slabs: list[_Slab] = []  # least recently handed out first


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """An uninitialised tensor, like `torch.empty(shape, dtype=dtype, device=device)`, from a reused slab when it
    is a CPU tensor of at least `MIN_BYTES`."""
    device = torch.device(device)
    shape = tuple(shape)
    numel = math.prod(shape)
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if device.type != "cpu" or nbytes < MIN_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    size = -(-nbytes // _GRAIN) * _GRAIN
    with _lock:
        fits = [s for s in _slabs if size <= s.size <= size * _SLACK and not s.in_use()]
        if fits:
            slab = min(fits, key=lambda s: s.size)
            _slabs.remove(slab)
        else:
            slab = _Slab(size)
        _slabs.append(slab)
        out = slab.tensor(shape, dtype, numel)
        extra = sum(s.size for s in _slabs if not s.in_use()) - IDLE_LIMIT
        for s in [s for s in _slabs if not s.in_use()]:  # the least recently used first
            if extra <= 0:
                break
            _slabs.remove(s)
            extra -= s.size
    return out


def release() -> int:
    """Unmap the slabs nobody uses; returns how many bytes were released."""
    with _lock:
        idle = [s for s in _slabs if not s.in_use()]
        for s in idle:
            _slabs.remove(s)
        freed = sum(s.size for s in idle)
    return freed


def stats() -> dict[str, int]:
    """Slabs held by the pool: {"slabs", "bytes", "idle_bytes"}."""
    with _lock:
        return {"slabs": len(_slabs), "bytes": sum(s.size for s in _slabs),
                "idle_bytes": sum(s.size for s in _slabs if not s.in_use())}
