"""``dp check-consistency MODEL``: evaluate a model in every installed backend and tabulate the differences.

The model is written in each format every installed backend writes, read back with
that backend's evaluator and evaluated on sample frames (periodic and not). Each
row gives ``max |x - x_ref| / (1 + max |x_ref|)`` of energy, force and virial against
dpmodel (NumPy), or, for a model dpmodel refuses (TensorFlow-only options), against the
first installed backend that runs it. Backends that refuse an option of the model say so; any other
failure or a difference beyond the tolerance makes the command fail.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from dpmodel.cli.frames import OUTPUTS

__all__ = ["add_parser", "check", "run"]

log = logging.getLogger("dpmodel.cli")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "check-consistency", help="compare a model across every installed backend",
        description="Evaluate MODEL in every installed backend on sample frames and print the largest "
        "differences against dpmodel (NumPy).")
    parser.add_argument("model", type=Path, help="model file (any suffix)")
    parser.set_defaults(run=run)
    return parser


def reference_backend(model: dict) -> str:
    """dpmodel (NumPy) when it runs ``model``, else the first installed backend that does."""
    from dpmodel.capabilities import backends_for_model
    from dpmodel.registry import backends

    able = [b for b in backends_for_model(model) if b in backends() and backends()[b].available()]
    if not able:
        raise ValueError("no installed backend can evaluate this model")
    return able[0]


def _rows(data: dict, frames: tuple, folder: Path, reference_name: str):
    """``(backend, suffix, diffs or None, status)`` for every format of every installed backend."""
    from dpmodel.cli.frames import compare, evaluate_frames, tolerance
    from dpmodel.errors import UnsupportedOptionError
    from dpmodel.registry import backends, save_model_file

    reference = evaluate_frames(backends()[reference_name].module("io").Evaluator(data=data), *frames)
    tol = tolerance(data["model"])
    for info in backends().values():
        if info.name == "dpmodel" or not info.available():
            continue
        for suffix in info.suffixes:
            path = folder / f"model{suffix}"
            try:
                save_model_file(path, data)
                diffs = compare(reference, evaluate_frames(info.module("io").Evaluator(path), *frames))
            except UnsupportedOptionError as err:
                yield info.name, suffix, None, f"refused: {err}"
                continue
            except Exception as err:  # noqa: BLE001 - reported in the table
                if "cannot write" in str(err) or "input only" in str(err):
                    continue
                yield info.name, suffix, None, f"FAILED: {' '.join(str(err).split())}"
                continue
            worst = max(diffs.values())
            yield info.name, suffix, diffs, "ok" if worst <= tol else f"DIFFERS (> {tol:.0e})"


def check(model: Path) -> tuple[list[str], bool, str]:
    """The table lines, whether every backend agreed (refusals count as agreeing), the reference backend."""
    from dpmodel.cli.frames import sample_frames
    from dpmodel.cli.freeze import model_file_data
    from dpmodel.registry import load_model_file

    data = model_file_data(load_model_file(model))
    m = data["model"]
    frames = sample_frames(m["type_map"], float(m["descriptor"]["rcut"]), m["descriptor"]["sel"])
    reference = reference_backend(m)
    header = f"{'backend':<8} {'format':<12} " + " ".join(f"{k:>12}" for k in ("energy", "force", "virial"))
    lines = [header + "  status", "-" * (len(header) + 8)]
    ok = True
    with tempfile.TemporaryDirectory(prefix="dp-check-") as folder:
        for name, suffix, diffs, status in _rows(data, frames, Path(folder), reference):
            values = [" " * 12] * 3 if diffs is None else \
                [f"{max(v for k, v in diffs.items() if k.endswith('/' + out)):12.2e}" for out in OUTPUTS]
            lines.append(f"{name:<8} {suffix:<12} {' '.join(values)}  {status}")
            ok = ok and not status.startswith(("FAILED", "DIFFERS"))
    return lines, ok, reference


def run(args: argparse.Namespace) -> int:
    lines, ok, reference = check(args.model)
    print(f"max relative difference to {reference} on sample frames, model {args.model}")
    print("\n".join(lines))
    if not ok:
        raise ValueError(f"some backends disagree with {reference} or failed (see the table)")
    return 0
