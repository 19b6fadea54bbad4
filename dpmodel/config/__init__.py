"""The ``input.json`` schema this project supports, checked with ``dargs``.

One module per section (``model``, ``learning_rate``, ``loss``, ``training``);
``keys`` adds full-path messages for unknown or misplaced keys.  Keys starting
with ``_`` (e.g. ``_comment``) are dropped everywhere.

>>> from dpmodel.config import load_input
>>> config = load_input("examples/alloy/input.json")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dargs import Argument
from dargs.dargs import ArgumentError

from dpmodel.config.keys import as_config_error, check_keys
from dpmodel.config.learning_rate import check_learning_rate, learning_rate_args
from dpmodel.config.loss import loss_args
from dpmodel.config.model import check_model, model_args
from dpmodel.config.training import check_training, training_args
from dpmodel.errors import ConfigError

__all__ = ["input_args", "load_input", "normalize", "schema_docs"]


def section_args() -> list[Argument]:
    """Return the schema of each top-level section, in documentation order."""
    return [model_args(), learning_rate_args(), loss_args(), training_args()]


def input_args() -> Argument:
    """Return the schema of the whole ``input.json``."""
    return Argument("input", dict, section_args(), doc="DeePMD-kit input file.")


def normalize(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` strictly and fill in defaults.

    Parameters
    ----------
    config : dict
        The parsed ``input.json``; it is not modified.

    Returns
    -------
    dict
        A new dict with aliases replaced by canonical keys (``se_r`` ->
        ``se_e2_r``, ``n_neuron`` -> ``neuron``, ``stop_batch`` -> ``numb_steps``),
        defaults filled and ``_*`` keys removed.

    Raises
    ------
    ConfigError
        For an unknown, misplaced, missing or mistyped key, naming its path
        (e.g. ``model/descriptor/rcut_smth``).
    """
    if not isinstance(config, dict):
        raise ConfigError(f"input: expected a dict, got {type(config).__name__}")
    root = input_args()
    try:
        normalized = root.normalize_value(config, trim_pattern="_*")
        # a section defaulted to {} (loss, fitting_net) gets its own defaults
        # only on a second pass; normalization is idempotent otherwise
        normalized = root.normalize_value(normalized, inplace=True)
        check_keys(root, normalized)
        root.check_value(normalized, strict=True)
    except ArgumentError as err:
        raise as_config_error(err) from err
    check_model(normalized["model"])
    check_learning_rate(normalized["learning_rate"])
    check_training(normalized["training"])
    return normalized


def load_input(path: str | os.PathLike) -> dict[str, Any]:
    """Read and normalize an input file (``.json``, ``.yaml`` or ``.yml``).

    Parameters
    ----------
    path : str or path
        The input file.  Data paths inside stay as written; resolve them against
        ``Path(path).parent``.

    Returns
    -------
    dict
        The normalized config (see ``normalize``).

    Raises
    ------
    ConfigError
        If the suffix is unknown, the file cannot be parsed, or the content is
        invalid.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError(
            f"{path}: unknown input suffix {suffix!r}; expected .json, .yaml or .yml"
        )
    text = path.read_text()
    config = _parse_json(path, text) if suffix == ".json" else _parse_yaml(path, text)
    return normalize(config)


def _parse_json(path: Path, text: str) -> Any:
    """Parse JSON text, naming the file and position on error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from err


def _parse_yaml(path: Path, text: str) -> Any:
    """Parse YAML text, naming the file and position on error."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err


def schema_docs() -> str:
    """Return the reStructuredText documentation of every supported key.

    Returns
    -------
    str
        ``dargs`` ``gen_doc`` output of each section, with anchors and links.
    """
    docs = [arg.gen_doc(make_anchor=True, make_link=True) for arg in section_args()]
    return "\n\n".join(docs)
