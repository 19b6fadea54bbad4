"""Training batches staged one step ahead: the host work of batch ``t + 1`` runs while step ``t`` does.

A backend's host work on a batch (ghost atoms, neighbour list, layout: its optional
``stage`` method, :mod:`dpmodel.training.protocol`) depends on the frames alone, never on the
parameters, so it may run early. :class:`StagedBatches` draws the batches in order on the
calling thread, as without it, and stages each on one background thread while the caller
trains on the one before. A framework's compiled step keeps about 1.6 of 2 cores busy and the
NumPy neighbour search mostly one, so on the water example a first-epoch TensorFlow step
takes 5 to 29 % less time (median 12 %, 4 paired runs of ``dp --tf train``). The staging
thread runs at a lower priority (``nice`` +10, on Linux), so that it takes the cores the step
leaves idle rather than slowing the step: at normal priority it made the TensorFlow step
itself about a fifth slower. The staged result is a pure function of the batch: losses and
parameters are bitwise those of staging in line.

JAX's steps took 7 % less time with it (median of 4 paired runs). The PyTorch backend has no
``stage``: with one, a water step took 18 % longer (median of 4 paired runs), most likely
because its OpenMP threads meet at the end of every parallel region, so a thread that loses
its core to the staging thread holds up the others.

Staging stays on the calling thread when the backend has no ``stage``, or when host work is
held to one thread (:func:`dpmodel.host_threads.host_threads`, ``OMP_NUM_THREADS=1`` for
instance).
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from dpmodel.host_threads import host_threads

__all__ = ["STAGING_NICE", "StagedBatches"]

#: niceness added to the staging thread (Linux gives each thread its own)
STAGING_NICE = 10


def _lower_priority() -> None:
    """Make the calling thread nicer by :data:`STAGING_NICE` (Linux only; elsewhere the call
    would change the whole process, so nothing is done)."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + STAGING_NICE))
    except OSError:  # a sandbox may forbid it; staging still works at normal priority
        pass


class StagedBatches:
    """The batches of ``data`` in order, each with its staged form, staged one ahead.

    Parameters
    ----------
    data : :class:`dpmodel.data.DataSystems` (``next_batch``, ``state``)
    stage : the backend's ``stage(batch)``, or None (batches go to the step as they are)
    background : stage on a background thread (default: when host work may use more than one thread)
    """

    def __init__(self, data: Any, stage: Callable[[dict], Any] | None, background: bool | None = None) -> None:
        self.data, self.stage = data, stage
        if background is None:
            background = host_threads() > 1
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="dp-stage", initializer=_lower_priority) \
            if background and stage is not None else None
        self._ahead: tuple[dict, Future, dict] | None = None
        self._state = data.state()

    def _draw(self) -> tuple[dict, Future, dict]:
        _, batch = self.data.next_batch()
        state = self.data.state()
        return batch, self._executor.submit(self.stage, batch), state

    def next(self, more: bool = True) -> tuple[dict, Any]:
        """The next batch and its staged form (the batch itself without ``stage``); with ``more``,
        the batch after it is drawn and staged in the background meanwhile."""
        if self._executor is None:
            _, batch = self.data.next_batch()
            self._state = self.data.state()
            return batch, batch if self.stage is None else self.stage(batch)
        batch, staged, self._state = self._ahead if self._ahead is not None else self._draw()
        self._ahead = self._draw() if more else None
        return batch, staged.result()

    def state(self) -> dict:
        """The data state after the batches :meth:`next` returned (not those staged ahead), for checkpoints."""
        return self._state

    def close(self) -> None:
        """Wait for a batch staged ahead, then stop the background thread."""
        self._ahead = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __enter__(self) -> "StagedBatches":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
