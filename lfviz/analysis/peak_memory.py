"""How much memory a call grew the process by: the peak of torch's CUDA allocations, or of the CPU process's
resident set size (RSS), above the level at entry. Both count everything the process did meanwhile. And, before a
run, how much it will take (`run_bytes`): what the app's memory budget checks an action against."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import torch

from ..attention import capture_pool


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


def trim() -> None:
    """Hand memory that Python and torch freed back to the system (glibc's malloc_trim, and the capture pool's idle
    slabs: up to `capture_pool.IDLE_LIMIT` of dropped runs' bands), so the process's RSS follows what it holds
    rather than the most it ever held (the app's memory budget reads it)."""
    capture_pool.release()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


# -- estimates of a run's memory, before it runs ------------------------------------------------------------
TOKEN_OBJECT_BYTES = 1200  # per token: its string, offsets, scores and (causal LMs) five next-token guesses
SAFETY = 1.25  # estimates are of the tensors; the allocator and Python's objects add to them


@dataclass(frozen=True)
class RunBytes:
    """Memory of one run on `n` tokens, in bytes: `kept` stays while the run's result is cached (captured
    attention, hidden states), `transient` is the most in use meanwhile (one layer's activations, attention
    weights before they are stored, output-head rows). `parts` names the largest pieces, for messages."""

    n: int
    kept: int
    transient: int
    parts: dict = field(default_factory=dict)

    @property
    def peak(self) -> int:
        return self.kept + self.transient


def run_bytes(runner, n: int, config, capture: bool = True, capture_layers=None,
              capture_dtype: torch.dtype = torch.float16, hidden_states: bool = True) -> RunBytes:
    """Estimate, before running, the memory `runner.run` on n tokens takes (see `RunBytes`). Captured attention is
    (H, n, W + 1) per layer in `capture_dtype` (a causal LM keeps the band's past half, W/2 + 1 columns), with the
    band never wider than the text, plus (H, n, G) to and (H, G, n) from the G global tokens; hidden states are
    (L + 1) x (n, D) fp32. Upper estimates (x `SAFETY`)."""
    causal = getattr(runner, "causal", False)  # a runner says what it is (model.base.RunnerBase)
    L, H = runner.num_layers, runner.num_heads
    hf = runner.config
    D = hf.hidden_size
    inner = getattr(hf, "intermediate_size", 4 * D)
    specs = [s.for_length(n) for s in config.resolve(L, H)]
    G = len([g for g in config.global_tokens if g < n])
    item = torch.finfo(capture_dtype).bits // 8
    layers = range(L) if capture_layers is None else sorted(set(capture_layers))
    parts = {}
    if capture:
        cols = [(specs[l].window // 2 + 1) if causal else (specs[l].window + 1) for l in layers]
        parts["captured attention"] = sum(H * n * (c * item + 2 * G * item + 4) for c in cols)
    if hidden_states:
        parts["hidden states"] = (L + 1) * n * D * 4
    parts["tokens and predictions"] = n * (D * 4 + TOKEN_OBJECT_BYTES)
    kept = sum(parts.values())
    # one layer at a time: q, k, v (repeated per query head), output, residuals, the MLP's inner activations
    activations = n * (10 * D + 3 * inner) * 4
    widest = max(s.window for s in specs)
    weights = H * n * (widest + 1) * item if capture else 0  # one layer's full band before it is stored
    scores = 64 << 20  # the kernel's blocks of scores (a few MB each) and a dense chunk
    if causal:
        from ..model.causal_runner import logit_rows

        head = 3 * min(n, logit_rows(hf.vocab_size)) * hf.vocab_size * 4  # logits rows, log-softmax, log-sum-exp
        # measured (SmolLM2, 3,993 tokens): Hugging Face's decoder layers and the output head hold about twice this
        activations = 2 * (activations + head)
    transient = activations + weights + scores
    if weights:
        parts["one layer's attention while it is captured"] = weights
    return RunBytes(n, int(kept * SAFETY), int(transient * SAFETY), parts)


def longest_fitting(runner, n: int, config, available: int, **kw) -> int:
    """The most tokens (at most n) whose run's `run_bytes(...).peak` fits in `available` bytes; 0 if none."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if run_bytes(runner, mid, config, **kw).peak <= available:
            lo = mid
        else:
            hi = mid - 1
    return lo


def gib(b: float) -> str:
    return f"{b / 2**30:.1f} GiB" if b >= 2**30 * 0.95 else f"{b / 2**20:,.0f} MiB"
