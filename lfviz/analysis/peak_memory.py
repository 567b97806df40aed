"""How much memory a call grew the process by: the peak of torch's CUDA allocations, or of the CPU process's
resident set size (RSS), above the level at entry. Both count everything the process did meanwhile."""
from __future__ import annotations

import os
import threading

import torch


def _libc():
    try:
        import ctypes

        lib = ctypes.CDLL("libc.so.6")
        return lib if hasattr(lib, "malloc_trim") else None
    except OSError:  # not glibc (macOS, musl): RSS growth is then measured from wherever it stands
        return None


_LIBC = _libc()


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Context manager; `.grown_mb` after exit: peak memory above the level at entry (None when unknown).

    CUDA: torch's peak allocated bytes on `device`. CPU: the process RSS, sampled every `interval` seconds in a
    background thread (torch releases the GIL inside its kernels, so the sampler keeps running). On glibc, freed
    memory is first handed back to the system (malloc_trim), else a long-lived process (the app) would reuse
    memory it already holds and show almost no growth.
    """

    def __init__(self, device: torch.device, interval: float = 0.002):
        self.device, self.interval = torch.device(device), interval
        self.grown_mb: float | None = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
        self._start = _rss_bytes()
        self._peak = self._start
        self._stop = threading.Event()
        if self._start is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            rss = _rss_bytes()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.grown_mb = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
            return False
        if self._start is None:
            return False
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss_bytes() or 0)
        self.grown_mb = max(0, self._peak - self._start) / 2**20
        return False


def memory_meaning(device: torch.device) -> str:
    if torch.device(device).type == "cuda":
        return ("peak GPU memory allocated by torch during the call, above what was allocated before it "
                "(weights excluded; other tabs running on the same GPU at the same time are included)")
    trimmed = "freed memory is handed back to the system first, so " if _LIBC is not None else ""
    return ("peak growth of this process's resident memory (RSS) during the first run of each point, sampled "
            f"every 2 ms ({trimmed}memory the allocator still holds is not counted again; weights excluded; "
            "anything else the app did at the same time is included)")
