"""The ``dp`` argument parser: global options and the subcommand table."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os

import dpmodel

__all__ = ["COMMANDS", "build_parser", "default_backend"]

#: subcommand modules, in help order (each has ``add_parser`` and ``run``)
COMMANDS = ("train", "freeze", "test", "convert_backend", "show", "neighbor_stat", "check_consistency")


def default_backend() -> str:
    """``$DP_BACKEND`` or ``pt``."""
    return os.environ.get("DP_BACKEND", "pt")


def _global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """Options accepted before the subcommand and, repeated, after it (``dp train --tf in.json``)."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-b", "--backend", default=default(default_backend()),
                       help="backend for train and freeze: pt, tf, jax or an alias (default: $DP_BACKEND or pt)")
    for flag, name in (("--pt", "pt"), ("--tf", "tf"), ("--jax", "jax")):
        group.add_argument(flag, dest="backend", action="store_const", const=name, default=default(None),
                           help=f"same as -b {name}")
    parser.add_argument("-v", "--verbose", action="count", default=default(0),
                        help="more output: -v debug messages and tracebacks, -vv debug of every library")
    parser.add_argument("-q", "--quiet", action="count", default=default(0), help="only warnings and errors")
    parser.add_argument("--log-path", default=default(None), help="also write the log to this file")
    if top:
        parser.add_argument("--version", action="version", version=f"dp (dpmodel-se-r) {dpmodel.__version__}")


def build_parser() -> argparse.ArgumentParser:
    """The full parser; each subcommand sets ``args.run``."""
    parser = argparse.ArgumentParser(
        prog="dp", description="Train, freeze, test and convert se_e2_r energy models (DeePMD-kit v3 files).")
    _global_options(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = list(COMMANDS)
    if importlib.util.find_spec("dpmodel.cli.compress") is not None:  # wired by the compression work
        names.append("compress")
    for name in names:
        _global_options(importlib.import_module(f"dpmodel.cli.{name}").add_parser(subparsers), top=False)
    return parser
