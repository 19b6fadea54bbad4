"""Backend-specific resolution of a normalized input: per-backend defaults, refusals.

``normalize`` keeps options whose default depends on the backend as ``None``
(:data:`dpmodel.capabilities.BACKEND_DEFAULTS`); :func:`resolve_for_backend` fills
them for the backend that will run the input and refuses, through
:func:`dpmodel.capabilities.check_supported`, any option value that backend lacks.
"""

from __future__ import annotations

import copy
from typing import Any

from dpmodel.capabilities import BACKEND_DEFAULTS, RESTRICTIONS, backend_default, check_supported

__all__ = ["resolve_for_backend"]

_MISSING = object()


def _get(config: dict[str, Any], path: str) -> Any:
    node: Any = config
    for key in path.split("/"):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split("/")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value


def resolve_for_backend(config: dict[str, Any], backend: str) -> dict[str, Any]:
    """A copy of a normalized ``config`` ready for ``backend``.

    Parameters
    ----------
    config : dict
        Output of :func:`dpmodel.config.normalize`; not modified.
    backend : str
        ``"pt"``, ``"jax"``, ``"tf"`` or ``"dpmodel"``.

    Returns
    -------
    dict
        ``config`` with every backend-dependent default filled in.

    Raises
    ------
    UnsupportedOptionError
        For an option value ``backend`` does not implement, naming the key, the
        backends that do and the fix.
    """
    config = copy.deepcopy(config)
    for path in BACKEND_DEFAULTS:
        if _get(config, path) is None:
            _set(config, path, backend_default(path, backend))
    for restriction in RESTRICTIONS:
        value = _get(config, restriction.option)
        if value is not _MISSING:
            check_supported(restriction.option, value, backend)
    return config
