"""``dp compress -i MODEL -o COMPRESSED``: tabulate the embedding nets of any model file.

The input and output suffixes pick the backends (any pair works: compression acts on
the serialized model, :mod:`dpmodel.compress`). The compressed model is then checked
against the input on sample frames (:mod:`dpmodel.cli.frames`, evaluated with dpmodel or,
for options dpmodel refuses, the first installed backend that implements them) and the
largest relative difference is logged; a warning is given above 1e-6.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["add_parser", "run"]

log = logging.getLogger("dpmodel.cli")

#: relative difference (compressed vs input on sample frames) above which a warning is logged
WARN_ABOVE = 1e-6


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compress", help="tabulate the embedding nets of a model file",
        description="Replace every embedding net by a table of quintic polynomials (DeePMD-kit's model "
        "compression). The first table spans the range of the normalised environment found from the model "
        "statistics and the smallest neighbour distance, with stride STEP; the second continues to "
        "EXTRAPOLATE times its upper bound with stride 10*STEP.")
    parser.add_argument("-i", "--input", default="frozen_model",
                        help="model file to compress; without a known suffix the backend's default is added")
    parser.add_argument("-o", "--output", default="frozen_model_compressed",
                        help="compressed model file; without a known suffix the backend's default is added")
    parser.add_argument("-s", "--step", type=float, default=0.01, help="stride of the first table (default: 0.01)")
    parser.add_argument("-e", "--extrapolate", type=float, default=5,
                        help="the second table ends at this multiple of the first table's upper bound (default: 5)")
    parser.add_argument("-f", "--frequency", type=int, default=-1,
                        help="check every this many evaluations for environment values beyond the tables and "
                        "report them (default: -1, off)")
    parser.add_argument("-t", "--training-script", type=Path, default=None,
                        help="training input.json, used to compute min_nbor_dist from its training data when the "
                        "model file does not record it")
    parser.add_argument("-c", "--checkpoint-folder", default=None,
                        help="accepted for DeePMD-kit compatibility; unused (compression needs no training)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from dpmodel.cli.freeze import with_suffix
    from dpmodel.compress import compress_file

    source, output = with_suffix(args.input, args.backend), with_suffix(args.output, args.backend)
    written = compress_file(source, output, args.step, args.extrapolate, args.frequency, args.training_script)
    worst = _check(source, written)
    log.info("compressed %s -> %s (min_nbor_dist %.4f Å)", source, output, float(written["@variables"]["min_nbor_dist"]))
    if worst is None:
        log.warning("no installed backend evaluates this model, so the compressed model was not compared "
                    "with %s", source)
    elif worst > WARN_ABOVE:
        log.warning("the compressed model differs from %s by %.1e (relative) on sample frames; use a smaller "
                    "-s/--step or check min_nbor_dist", source, worst)
    else:
        log.info("largest relative difference to %s on sample frames: %.1e", source, worst)
    return 0


def _check(source: Path, written: dict) -> float | None:
    """Largest relative difference between the input model and the compressed one on sample frames.

    Evaluated with dpmodel, or with the first installed backend that implements the
    model's options (TensorFlow for ``type_one_side = false``); None if none can.
    """
    from dpmodel.cli.frames import compare, evaluate_frames, sample_frames
    from dpmodel.errors import UnsupportedOptionError
    from dpmodel.registry import backends, load_model_file

    model = written["model"]
    frames = sample_frames(model["type_map"], float(model["descriptor"]["rcut"]), model["descriptor"]["sel"])
    original = {"model": load_model_file(source)["model"]}
    for info in backends().values():
        if not info.available():
            continue
        evaluator = info.module("io").Evaluator
        try:
            reference = evaluate_frames(evaluator(data=original), *frames)
        except UnsupportedOptionError:
            continue
        return max(compare(reference, evaluate_frames(evaluator(data=written), *frames)).values())
    return None
