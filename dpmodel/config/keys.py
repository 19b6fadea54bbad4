"""Strict key checking with full key paths, and dargs errors as ``ConfigError``.

dargs reports an unknown key at its parent (``model/descriptor``) and knows nothing
of other sections.  Here every unknown key is named by its full path
(``model/descriptor/rcut_smthh``); a key that is valid elsewhere in the schema is
reported with the path(s) where it belongs, found from an index built from the
schema itself.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from typing import Any

from dargs import Argument
from dargs.dargs import ArgumentError

from dpmodel.errors import ConfigError

__all__ = ["as_config_error", "check_keys", "key_index"]

_KEY_IN_MESSAGE = re.compile(r"key `([^`]+)`")


def key_index(root: Argument) -> dict[str, list[str]]:
    """Map every key name (and alias) of the schema to the paths where it is valid.

    Parameters
    ----------
    root : dargs.Argument
        The whole ``input.json`` schema.

    Returns
    -------
    dict of str to list of str
        E.g. ``{"numb_steps": ["training/numb_steps"], "stop_batch": [...]}``.
    """
    index: dict[str, list[str]] = defaultdict(list)

    def walk(arg: Argument, path: str) -> None:
        for sub in arg.sub_fields.values():
            sub_path = f"{path}/{sub.name}" if path else sub.name
            for name in (sub.name, *sub.alias):
                if sub_path not in index[name]:
                    index[name].append(sub_path)
            walk(sub, sub_path)
        for variant in arg.sub_variants.values():
            flag_path = f"{path}/{variant.flag_name}" if path else variant.flag_name
            if flag_path not in index[variant.flag_name]:
                index[variant.flag_name].append(flag_path)
            for choice in variant.choice_dict.values():
                walk(choice, path)

    walk(root, "")
    return dict(index)


def check_keys(root: Argument, config: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for the first key the schema does not allow.

    Parameters
    ----------
    root : dargs.Argument
        The whole ``input.json`` schema.
    config : dict
        A normalized config (aliases converted, ``_*`` keys trimmed).

    Raises
    ------
    ConfigError
        Naming the key's full path and where it belongs, or the closest valid key.
    """
    index = key_index(root)

    def hook(arg: Argument, value: dict[str, Any], path: list[str]) -> None:
        allowed = arg.flatten_sub(value, path)
        if not allowed:
            return
        for name in value:
            if name not in allowed:
                raise ConfigError(_unknown_key_message(name, path, allowed, index))

    root.traverse_value(config, sub_hook=hook)


def _unknown_key_message(
    name: str, path: list[str], allowed: dict[str, Any], index: dict[str, list[str]]
) -> str:
    """Describe an unknown key, its correct home or the closest valid key."""
    full = "/".join([*path, name])
    here = "/".join(path) or "the top level"
    message = f"{full}: unknown key {name!r} in {here}"
    homes = index.get(name)
    if homes:
        return f"{message}; it belongs at {' or '.join(homes)}"
    close = difflib.get_close_matches(name, list(allowed))
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    return f"{message}; valid keys: {', '.join(sorted(allowed))}"


def as_config_error(err: ArgumentError) -> ConfigError:
    """Turn a dargs error into a ``ConfigError`` that names the key's full path.

    Parameters
    ----------
    err : dargs.dargs.ArgumentError
        Raised by dargs with the parent path and a message naming the key.

    Returns
    -------
    ConfigError
        ``"<parent>/<key>: <dargs message>"``.
    """
    match = _KEY_IN_MESSAGE.search(err.message or "")
    parts = [p for p in err.path.split("/") if p]
    if match:
        parts.append(match.group(1))
    full = "/".join(parts) or "input"
    return ConfigError(f"{full}: {err.message}")
