"""Keep large temporary arrays on the heap: glibc ``mallopt`` thresholds for evaluation and training.

Evaluating a model allocates and frees arrays of a few MB many times per frame (the
embedding net's activations on every neighbour pair). By default glibc serves such
blocks with a fresh ``mmap`` and returns them on ``free``, so every allocation pays a
page fault per 4 KiB page it touches; on a 2-core CPU that was a quarter of the time of
a 192-atom water frame. Raising ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` keeps those
blocks on the heap for reuse, what the PyTorch CPU tuning guide gets by preloading
jemalloc or tcmalloc. The cost: memory freed by the process stays with it (up to its
peak) until it exits.

:func:`tune` runs once per process, from :class:`dpmodel.infer.DeepPot` and the
trainer; ``DP_MALLOC_TUNING=0`` turns it off. Elsewhere than glibc Linux it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

_LOG = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # bytes: glibc's largest accepted value on 64-bit systems
TRIM_THRESHOLD = 256 * 1024 * 1024  # bytes of free heap top kept before returning it to the system

_STATE: dict[str, bool] = {}


def tune() -> bool:
    """Set the thresholds once (unless ``DP_MALLOC_TUNING=0``); True when they are in effect."""
    if "done" not in _STATE:
        _STATE["done"] = _apply() if os.environ.get("DP_MALLOC_TUNING", "1").strip() != "0" else False
    return _STATE["done"]


def _apply() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt thresholds)
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _LOG.debug("glibc malloc thresholds %s", "set" if ok else "refused")
    return ok
