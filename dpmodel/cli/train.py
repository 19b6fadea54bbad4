"""``dp train INPUT``: train a model with the selected backend (:mod:`dpmodel.training`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["add_parser", "run"]

log = logging.getLogger("dpmodel.cli")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="train a model", description="Train a model from a DeePMD-kit input.json (or YAML). "
        "Data paths are relative to the input file; outputs go to the current directory.")
    parser.add_argument("input", help="input.json / input.yaml")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("-r", "--restart", type=Path, help="continue the identical run from a checkpoint "
                       "(a .dp checkpoint or the folder holding 'checkpoint')")
    start.add_argument("-i", "--init-model", type=Path, help="start from the weights of a checkpoint")
    start.add_argument("-f", "--init-frz-model", type=Path, help="start from the weights of a model file")
    parser.add_argument("-o", "--output", type=Path, default=Path("out.json"),
                        help="where the normalized input goes (default: out.json)")
    parser.add_argument("--skip-neighbor-stat", action="store_true",
                        help="skip neighbour statistics (no overlap or sel checks; sel must be a list)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from dpmodel.training import Trainer, TrainingInterrupted, TrainOptions, prepare

    options = TrainOptions(restart=args.restart, init_model=args.init_model, init_frz_model=args.init_frz_model,
                           skip_neighbor_stat=args.skip_neighbor_stat, output=args.output)
    trainer = Trainer(prepare(args.input, args.backend, options), options)
    try:
        steps = trainer.run()
    except TrainingInterrupted as stop:
        log.warning("%s", stop)
        return 130
    log.info("finished %d steps; latest checkpoint %s; freeze it with: dp freeze -o frozen_model%s",
             steps, trainer.last_checkpoint, trainer.p.backend.suffixes[0])
    return 0
