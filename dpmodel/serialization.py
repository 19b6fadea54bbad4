"""Helpers shared by every ``serialize()`` / ``deserialize()`` pair.

Serialized objects are plain dicts in DeePMD-kit v3's schema: ``@class``, often
``type``, an integer ``@version``, arrays under ``@variables`` and JSON-able data
elsewhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dpmodel.errors import SchemaVersionError


def check_version(data: dict, name: str, maximum: int, minimum: int = 1) -> int:
    """Pop ``@version`` from ``data`` (missing means 1) and check it is supported.

    Raises
    ------
    SchemaVersionError
        Naming ``name``, the version found and the accepted range.
    """
    version = int(data.pop("@version", 1))
    if not minimum <= version <= maximum:
        raise SchemaVersionError(
            f"{name}: serialized @version {version} is not supported; "
            f"this software reads versions {minimum} to {maximum}"
        )
    return version


def check_class(data: dict, expected: str, type_name: str | None = None) -> None:
    """Pop ``@class`` (and ``type``) from ``data`` and check they are ``expected``."""
    found = data.pop("@class", expected)
    if found != expected:
        raise ValueError(f"serialized @class is {found!r}, expected {expected!r}")
    if type_name is not None:
        found_type = data.pop("type", type_name)
        if found_type not in _TYPE_ALIASES.get(type_name, (type_name,)):
            raise ValueError(f"serialized {expected} type is {found_type!r}, expected {type_name!r}")


_TYPE_ALIASES = {"se_r": ("se_r", "se_e2_r")}


def check_keys(data: dict, allowed: set[str], name: str) -> None:
    """Refuse keys a deserializer does not know, naming them."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{name}: unknown serialized keys {unknown}; expected a subset of {sorted(allowed)}")


def to_numpy_tree(data: Any) -> Any:
    """Deep copy of a serialized tree with every array converted to NumPy."""
    if isinstance(data, dict):
        return {k: to_numpy_tree(v) for k, v in data.items()}
    if isinstance(data, list):
        return [to_numpy_tree(v) for v in data]
    if isinstance(data, tuple):
        return [to_numpy_tree(v) for v in data]
    if hasattr(data, "shape") and hasattr(data, "dtype") and not isinstance(data, np.generic):
        return np.array(data, copy=True)
    return data


def trees_equal(left: Any, right: Any, path: str = "") -> list[str]:
    """Paths where two serialized trees differ (arrays compared bitwise with dtype).

    Returns an empty list when the trees are equal.
    """
    if isinstance(left, dict) and isinstance(right, dict):
        diffs = [f"{path}/{k}: missing on one side" for k in sorted(set(left) ^ set(right), key=str)]
        for key in left.keys() & right.keys():
            diffs += trees_equal(left[key], right[key], f"{path}/{key}")
        return diffs
    if isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        if len(left) != len(right):
            return [f"{path}: lengths {len(left)} != {len(right)}"]
        return [d for i, (a, b) in enumerate(zip(left, right)) for d in trees_equal(a, b, f"{path}/{i}")]
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        a, b = np.asarray(left), np.asarray(right)
        same = a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        return [] if same else [f"{path}: arrays differ"]
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]
