"""A process-wide, thread-safe cache bounded in bytes, not entries, and the byte size of what it holds.

The app keeps loaded models and runs (captured attention, hidden states) for every browser tab, like
`st.cache_resource`, but a count of entries says nothing about memory: one captured run of a causal LM at 4k
tokens holds hundreds of MB, a run without capture a few MB. `ByteLRU` sizes each entry with `nbytes` and evicts
the least recently used ones to stay within its budget; `make_room(need)` frees room for an action before it runs.

    store = ByteLRU(budget=4 << 30)
    res = store.get_or_compute(("run", key), lambda: runner.run(...))   # computed once, shared by every thread
"""
from __future__ import annotations

import dataclasses
import sys
import threading
from collections import Counter, OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Hashable

import numpy as np
import torch


def nbytes(obj: Any, _seen: set | None = None) -> int:
    """Bytes of the tensors and arrays `obj` holds, found through dataclasses, containers, `__dict__` and
    `torch.nn.Module`s (parameters and buffers), each storage counted once; other objects count their shallow
    size (strings, numbers: the tokens and predictions of a run)."""
    seen = set() if _seen is None else _seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        key = ("storage", obj.untyped_storage().data_ptr()) if obj.untyped_storage().data_ptr() else None
        if key in seen:  # a view of a storage counted already
            return 0
        if key:
            seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, np.ndarray):
        return obj.nbytes if obj.base is None else nbytes(obj.base, seen)
    if isinstance(obj, torch.nn.Module):
        return sum(nbytes(t, seen) for t in (*obj.parameters(), *obj.buffers()))
    if isinstance(obj, (str, bytes, int, float, bool, type(None))):
        return sys.getsizeof(obj)
    if isinstance(obj, dict):
        return sys.getsizeof(obj) + sum(nbytes(k, seen) + nbytes(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sys.getsizeof(obj) + sum(nbytes(v, seen) for v in obj)
    if hasattr(obj, "memory_usage") and hasattr(obj, "columns"):  # a pandas DataFrame
        return int(obj.memory_usage(deep=True).sum())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sys.getsizeof(obj) + sum(nbytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sys.getsizeof(obj) + sum(nbytes(v, seen) for v in vars(obj).values())
    return sys.getsizeof(obj)


class ByteLRU:
    """Least-recently-used cache whose entries together stay within `budget` bytes (entries sized by `nbytes`).

    Thread-safe and process-wide: two threads asking for one key compute it once (the second waits). A failed
    computation caches nothing. An entry larger than the whole budget is returned but not kept. Pinned keys (`pin`)
    are never evicted to make room.
    """

    def __init__(self, budget: int):
        self.budget = int(budget)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()  # key -> (value, bytes), oldest first
        self._lock = threading.RLock()
        self._computing: dict[Hashable, threading.Lock] = {}
        self.pinned: Counter = Counter()  # key -> how many callers hold it (see `pin`)
        self.evicted = 0  # entries evicted so far (for tests and the bench)
        self.held = 0  # bytes of runs in progress (`hold`)

    # -- reading ----------------------------------------------------------------------------------------------
    def get(self, key: Hashable, default=None):
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def keys(self) -> list:
        with self._lock:
            return list(self._entries)

    @property
    def used(self) -> int:
        """Bytes the entries hold, as sized when they were stored."""
        with self._lock:
            return sum(b for _, b in self._entries.values())

    # -- writing ----------------------------------------------------------------------------------------------
    def put(self, key: Hashable, value, size: int | None = None):
        """Store `value` (sized by `nbytes` unless `size` is given), evicting the oldest entries to fit."""
        size = nbytes(value) if size is None else int(size)
        with self._lock:
            self._entries.pop(key, None)
            if size > self.budget:
                return value  # larger than the whole cache: used once, not kept
            self._evict_until(self.budget - size)
            self._entries[key] = (value, size)
        return value

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any], size: Callable[[Any], int] | None = None):
        """The cached value of `key`, else `compute()` stored; concurrent callers of one key compute it once."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            gate = self._computing.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._entries:  # another thread computed it while this one waited
                    self._entries.move_to_end(key)
                    return self._entries[key][0]
            try:
                value = compute()
                return self.put(key, value, None if size is None else size(value))
            finally:
                with self._lock:
                    self._computing.pop(key, None)

    def make_room(self, need: int) -> int:
        """Evict the oldest unpinned entries until `need` more bytes fit in the budget beside the entries and the
        runs in progress (`hold`), or nothing is left to evict. Returns the bytes free afterwards."""
        with self._lock:
            self._evict_until(self.budget - self.held - int(need))
            return self.budget - self.held - self.used

    @contextmanager
    def hold(self, size: int):
        """While the block runs, `size` bytes count as taken (a run in progress: its peak), so another thread's
        `make_room` leaves room for it."""
        with self._lock:
            self.held += int(size)
        try:
            yield
        finally:
            with self._lock:
                self.held -= int(size)

    @contextmanager
    def pin(self, key: Hashable):
        """While the block runs, `key` is not evicted (e.g. the model a run is using: evicting it would free
        nothing, the run holds it)."""
        with self._lock:
            self.pinned[key] += 1
        try:
            yield
        finally:
            with self._lock:
                self.pinned[key] -= 1
                if self.pinned[key] <= 0:
                    del self.pinned[key]

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self, kind: str | None = None) -> None:
        """Drop every entry, or those whose key is a tuple starting with `kind`."""
        with self._lock:
            for key in [k for k in self._entries if kind is None or (isinstance(k, tuple) and k[:1] == (kind,))]:
                del self._entries[key]

    def _evict_until(self, limit: int) -> None:
        used = sum(b for _, b in self._entries.values())
        for key in list(self._entries):
            if used <= limit:
                break
            if self.pinned.get(key):
                continue
            used -= self._entries.pop(key)[1]
            self.evicted += 1
