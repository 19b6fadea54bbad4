"""Host threads for per-frame NumPy work (the neighbour search of many frames).

Much of a frame's host neighbour search runs in NumPy and SciPy kernels that release the
GIL, so frames searched on two threads of a 2-core machine finish about 1.5 times sooner
than one after the other. The number of threads follows DeePMD's environment variables:
``DP_INTRA_OP_PARALLELISM_THREADS``, else ``OMP_NUM_THREADS``, else every CPU this
process may run on; ``1`` keeps all host work on the calling thread.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

_ENV = ("DP_INTRA_OP_PARALLELISM_THREADS", "OMP_NUM_THREADS")
#: (process id, threads, pool): a pool is not carried into a forked child, which makes its own
_POOL: tuple[int, int, ThreadPoolExecutor] | None = None


def env_threads(name: str) -> int | None:
    """The integer value of environment variable ``name``, None when unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} = {value!r}: expected an integer number of threads") from None


def host_threads() -> int:
    """Threads for host work: the first of :data:`_ENV` set to a positive integer, else the usable CPUs."""
    for name in _ENV:
        count = env_threads(name)
        if count is not None and count > 0:
            return count
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _pool(threads: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL[:2] != (os.getpid(), threads):
        if _POOL is not None and _POOL[0] == os.getpid():
            _POOL[2].shutdown(wait=False)
        _POOL = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="dp-host"))
    return _POOL[2]


def thread_map(function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
    """``[function(item) for item in items]``, the items shared among :func:`host_threads` threads.

    Runs on the calling thread when there is one item or one thread; results keep the
    order of ``items``; the first exception raised by ``function`` propagates.
    """
    items = list(items)
    threads = min(host_threads(), len(items))
    if threads <= 1:
        return [function(item) for item in items]
    return list(_pool(threads).map(function, items))
