"""The app's memory budget reads the process's RSS after `peak_memory.trim()`: the capture pool's idle slabs (bands
of runs already dropped, up to 1 GiB) must not stay resident and count as memory the server holds."""
import gc

import torch

from lfviz.analysis import peak_memory
from lfviz.attention import capture_pool


def test_trim_hands_the_capture_pools_idle_slabs_back():
    gc.collect()
    capture_pool.release()
    before = capture_pool.stats()
    held = capture_pool.empty((capture_pool.MIN_BYTES,), torch.uint8)  # a kept run's band
    dropped = capture_pool.empty((capture_pool.MIN_BYTES * 2,), torch.uint8)  # an evicted run's band
    held.fill_(1), dropped.fill_(1)
    del dropped
    assert capture_pool.stats()["idle_bytes"] - before["idle_bytes"] >= 2 * capture_pool.MIN_BYTES
    peak_memory.trim()
    after = capture_pool.stats()
    assert after["idle_bytes"] == 0 and after["slabs"] == before["slabs"] + 1  # the held band stays, intact
    assert bool((held == 1).all())
