"""Logging of the ``dp`` command: level from ``-v``/``-q``, optional ``--log-path`` file."""

from __future__ import annotations

import logging
from pathlib import Path

from dpmodel.training.progress import dynamic_stderr_handler

__all__ = ["setup_logging"]

FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
PROJECT_LOGGERS = ("dpmodel", "backends")


def setup_logging(verbosity: int, log_path: str | Path | None = None) -> None:
    """Configure the project's loggers.

    Parameters
    ----------
    verbosity : int
        ``-v`` count minus ``-q`` count: <0 warnings only, 0 info (default),
        1 debug of this project, >=2 debug of every library too.
    log_path : path, optional
        Also write the log to this file.
    """
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handlers: list[logging.Handler] = [dynamic_stderr_handler(level)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="a"))
    formatter = logging.Formatter(FORMAT, datefmt="%H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.setLevel(level)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = False
        logger.handlers = list(handlers)
    if verbosity >= 2:
        root.handlers = list(handlers)
