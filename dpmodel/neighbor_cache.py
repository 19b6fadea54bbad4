"""Neighbour data of frames seen before: a bounded cache for training.

Training visits the same frames epoch after epoch, and a frame's ghost atoms and
neighbour list depend only on its coordinates, cell and types, never on the model's
weights. While a cache is active (the trainer activates one), :func:`dpmodel.neighbor.neighbor_data`
returns the stored result for NumPy inputs it has seen, keyed by a digest of their bytes
and of ``rcut``, ``sel`` and ``method``, and stores new ones, evicting the least recently
used past ``max_bytes``. Stored arrays are read-only, so no caller can alter an entry; the
store is locked, so the host thread that stages the next training batch
(:mod:`dpmodel.training.prefetch`) and the main thread may use it at once.

``DP_NEIGHBOR_CACHE_MB`` sets the size (default 1024 MB; 0 turns the cache off).
Inference never uses it: molecular dynamics does not revisit frames.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

DEFAULT_MB = 1024

_ACTIVE: list[NeighborCache] = []


class NeighborCache:
    """Least-recently-used store of ``neighbor_data`` results, at most ``max_bytes`` of arrays."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = self.misses = 0
        self._store: OrderedDict[bytes, tuple[np.ndarray, ...]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(coord: np.ndarray, atype: np.ndarray, cell: np.ndarray | None, rcut: float, sel: list[int],
            method: str) -> bytes:
        """Digest of the inputs (values, dtypes and shapes) and settings."""
        digest = hashlib.blake2b(repr((float(rcut), [int(s) for s in sel], method)).encode(), digest_size=20)
        for array in (coord, atype, cell):
            if array is None:
                digest.update(b"none")
                continue
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.digest()

    def get_or_build(self, key: bytes, build: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        """The stored result for ``key``, or ``build()``'s, stored read-only (built outside the lock)."""
        with self._lock:
            found = self._store.get(key)
            if found is not None:
                self.hits += 1
                self._store.move_to_end(key)
                return found
            self.misses += 1
        result = tuple(np.asarray(a) for a in build())
        for array in result:
            array.setflags(write=False)
        size = sum(a.nbytes for a in result)
        if size <= self.max_bytes:
            with self._lock:
                if key not in self._store:
                    self._store[key] = result
                    self.nbytes += size
                while self.nbytes > self.max_bytes:
                    _, dropped = self._store.popitem(last=False)
                    self.nbytes -= sum(a.nbytes for a in dropped)
        return result


def active() -> NeighborCache | None:
    """The cache in use, or None."""
    return _ACTIVE[-1] if _ACTIVE else None


def activate(max_mb: float | None = None) -> NeighborCache | None:
    """Start caching (``max_mb`` MB, else ``DP_NEIGHBOR_CACHE_MB``, else 1024); None when the size is 0."""
    if max_mb is None:
        text = os.environ.get("DP_NEIGHBOR_CACHE_MB", "").strip()
        try:
            max_mb = float(text) if text else DEFAULT_MB
        except ValueError:
            raise ValueError(f"environment variable DP_NEIGHBOR_CACHE_MB = {text!r}: expected a size in MB") from None
    if max_mb <= 0:
        return None
    cache = NeighborCache(int(max_mb * 1024 * 1024))
    _ACTIVE.append(cache)
    return cache


def deactivate(cache: NeighborCache | None) -> None:
    """Stop using ``cache`` (no-op for None)."""
    if cache is not None and cache in _ACTIVE:
        _ACTIVE.remove(cache)
