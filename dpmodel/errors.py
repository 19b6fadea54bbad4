"""Exception types raised at the boundaries of ``dpmodel``.

Each type subclasses the built-in exception whose meaning it refines, so callers
that catch ``ValueError`` or ``OSError`` keep working.  Messages name the key path
or file, the value found, what was expected and, where possible, the fix.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "ModelFileError",
    "SchemaVersionError",
    "UnsupportedOptionError",
]


class ConfigError(ValueError):
    """An input configuration (``input.json``) is invalid.

    The message names the key path, e.g. ``model/descriptor/rcut_smth``.
    """


class UnsupportedOptionError(ConfigError):
    """A valid option is not supported by the selected backend."""


class ModelFileError(OSError):
    """A model file is missing, unreadable or of an unknown format."""


class SchemaVersionError(ValueError):
    """A serialized object carries a ``@version`` outside the supported range."""


class DataError(ValueError):
    """A training/validation data system is missing files or has wrong shapes.

    The message names the file and the expected shape.
    """
