"""``dp freeze``: write the model of a checkpoint as a deployable file (backend from the suffix)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "model_file_data", "run", "with_suffix"]

log = logging.getLogger("dpmodel.cli")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "freeze", help="checkpoint -> model file", description="Write the model of a training checkpoint to a "
        "model file; its suffix (.pth, .savedmodel, .pb, .jax, .hlo, .dp, .yaml) picks the backend.")
    parser.add_argument("-c", "--checkpoint-folder", type=Path, default=Path("."),
                        help="folder holding the 'checkpoint' file, or a checkpoint file (default: .)")
    parser.add_argument("-o", "--output", default="frozen_model",
                        help="output model file; without a known suffix the backend's default is added")
    parser.set_defaults(run=run)
    return parser


def with_suffix(path: str, backend: str) -> Path:
    """``path``, or ``path`` plus the default suffix of ``backend`` when no backend owns its suffix."""
    from dpmodel.errors import ModelFileError
    from dpmodel.registry import by_name, for_suffix

    try:
        for_suffix(path)
        return Path(path)
    except ModelFileError:
        return Path(path + by_name(backend).suffixes[0])


def model_file_data(data: dict) -> dict:
    """The parts of an envelope a model file carries: ``model``, ``model_def_script``, ``min_nbor_dist``."""
    out = {"model": data["model"]}
    if data.get("model_def_script") is not None:
        out["model_def_script"] = data["model_def_script"]
    dist = (data.get("@variables") or {}).get("min_nbor_dist")
    if dist is not None:
        out["@variables"] = {"min_nbor_dist": np.float64(dist)}
    return out


def run(args: argparse.Namespace) -> int:
    from dpmodel.registry import load_model_file, save_model_file
    from dpmodel.training.checkpoint import latest_checkpoint

    source = args.checkpoint_folder
    if source.is_dir():
        source = latest_checkpoint(source)
    output = with_suffix(args.output, args.backend)
    save_model_file(output, model_file_data(load_model_file(source)))
    log.info("froze %s into %s", source, output)
    return 0
