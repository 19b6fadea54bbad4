"""Progress display: a ``rich`` bar with ETA on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["Progress", "eta_text"]


def eta_text(seconds: float) -> str:
    """``1h02m`` / ``3m05s`` / ``12s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _want_bar(enabled: bool | None) -> bool:
    if enabled is not None:
        return enabled
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return sys.stderr.isatty()


class Progress:
    """Context manager showing training progress from ``start`` to ``total`` steps.

    On a terminal with ``rich`` installed a bar with rate and ETA is drawn on stderr,
    and log records printed meanwhile appear above it; otherwise nothing is drawn
    and the trainer's log lines carry the ETA (:meth:`eta`).
    """

    def __init__(self, total: int, start: int = 0, enabled: bool | None = None) -> None:
        self.total, self.start, self.done = total, start, start
        self.bar = _want_bar(enabled)
        self._progress: Any = None
        self._t0 = time.perf_counter()

    def __enter__(self) -> "Progress":
        if self.bar:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, \
                TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = RichProgress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                          TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                          transient=False, redirect_stderr=True, redirect_stdout=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("train", total=self.total, completed=self.start)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def advance(self, steps: int = 1) -> None:
        """Record ``steps`` finished steps."""
        self.done += steps
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done)

    def eta(self) -> float:
        """Seconds left at the mean rate so far."""
        elapsed = time.perf_counter() - self._t0
        finished = self.done - self.start
        return elapsed / finished * (self.total - self.done) if finished else float("nan")


def dynamic_stderr_handler(level: int = logging.INFO) -> logging.Handler:
    """A stream handler that writes to whatever ``sys.stderr`` is at the time (so a live bar can redirect it)."""

    class _Stderr:
        def write(self, text: str) -> int:
            return sys.stderr.write(text)

        def flush(self) -> None:
            sys.stderr.flush()

    handler = logging.StreamHandler(_Stderr())
    handler.setLevel(level)
    return handler
