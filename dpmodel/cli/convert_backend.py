"""``dp convert-backend IN OUT``: rewrite a model file for another backend, verified before it is kept.

The output is first written beside ``OUT`` under a temporary name; input and output
are evaluated on sample frames (:mod:`dpmodel.cli.frames`) and the output replaces
``OUT`` only if every energy, force and virial agrees within the tolerance.
Otherwise the temporary file is removed, the differences are printed and the command
fails: nothing is left behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import uuid
from pathlib import Path

from dpmodel.cli.freeze import model_file_data

__all__ = ["add_parser", "convert", "run"]

log = logging.getLogger("dpmodel.cli")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert-backend", help="convert a model file between backends (verified)",
        description="Convert a model file; the suffixes of INPUT and OUTPUT pick the backends. The output is "
        "kept only if it reproduces the input's energies, forces and virials on sample frames.")
    parser.add_argument("input", type=Path, help="model file to read")
    parser.add_argument("output", type=Path, help="model file to write")
    parser.set_defaults(run=run)
    return parser


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _evaluator(path: Path):
    """The evaluator of ``path``; a neutral file (``.dp``, ``.yaml``) of a model that dpmodel
    cannot run (a TensorFlow-only option) is evaluated by a backend that can."""
    from dpmodel.capabilities import backends_for_model
    from dpmodel.registry import backends, for_suffix, load_model_file

    info = for_suffix(path)
    if info.name == "dpmodel":
        data = load_model_file(path)
        able = backends_for_model(data["model"])
        if "dpmodel" not in able:
            for name in able:
                other = backends().get(name)
                if other is not None and other.available():
                    return other.module("io").Evaluator(data=data)
    return info.module("io").Evaluator(path)


def _install(tmp: Path, output: Path) -> None:
    """Move ``tmp`` onto ``output`` (a directory output replaces the old one)."""
    if output.is_dir() and not output.is_symlink():
        old = output.with_name(f".{output.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old)
    else:
        os.replace(tmp, output)


def convert(source: Path, output: Path) -> dict[str, float]:
    """Convert, verify and install; return the differences per output.

    Raises
    ------
    ValueError
        When the output disagrees with the input beyond the tolerance (nothing is written).
    """
    from dpmodel.cli.frames import compare, evaluate_frames, sample_frames, tolerance
    from dpmodel.registry import for_suffix, load_model_file, save_model_file

    for_suffix(output)  # an unknown output suffix fails before any work
    data = model_file_data(load_model_file(source))
    model = data["model"]
    frames = sample_frames(model["type_map"], float(model["descriptor"]["rcut"]), model["descriptor"]["sel"])
    reference = evaluate_frames(_evaluator(source), *frames)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.parent / f".tmp-{uuid.uuid4().hex[:8]}-{output.name}"
    try:
        save_model_file(tmp, data)
        diffs = compare(reference, evaluate_frames(_evaluator(tmp), *frames))
        tol = tolerance(model)
        bad = {k: v for k, v in diffs.items() if not v <= tol}
        if bad:
            shown = ", ".join(f"{k} {v:.2e}" for k, v in bad.items())
            raise ValueError(f"{output} does not reproduce {source} (relative differences {shown} > {tol:.0e}); "
                             "nothing was written")
        _install(tmp, output)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
    return diffs


def run(args: argparse.Namespace) -> int:
    diffs = convert(args.input, args.output)
    worst = max(diffs.values())
    log.info("converted %s -> %s; largest relative difference on sample frames %.1e", args.input, args.output,
             worst)
    return 0
