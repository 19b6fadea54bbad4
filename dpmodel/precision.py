"""Precision names of DeePMD-kit and their NumPy dtypes."""

from __future__ import annotations

import numpy as np

from dpmodel.errors import ConfigError

_ALIASES = {
    "float16": "float16",
    "half": "float16",
    "float32": "float32",
    "single": "float32",
    "float64": "float64",
    "double": "float64",
    "default": "float64",
}

GLOBAL_DTYPE = "float64"
"""Precision of coordinates, energies and every public output."""


def canonical_precision(name: str, key: str = "precision") -> str:
    """Map a DeePMD precision string to the canonical NumPy name (``"float64"`` ...).

    Raises
    ------
    ConfigError
        If ``name`` is not a known precision; the message names ``key``.
    """
    try:
        return _ALIASES[str(name).lower()]
    except KeyError:
        known = ", ".join(sorted(_ALIASES))
        raise ConfigError(f"{key} = {name!r} is not a known precision; expected one of: {known}") from None


def dtype_of(xp, name: str):
    """The ``xp`` dtype of a DeePMD precision string."""
    return getattr(xp, canonical_precision(name))


def numpy_dtype(name: str) -> np.dtype:
    """The NumPy dtype of a DeePMD precision string."""
    return np.dtype(canonical_precision(name))
