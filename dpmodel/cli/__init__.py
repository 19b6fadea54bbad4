"""The ``dp`` command line: argparse front end, one module per subcommand.

Every subcommand module defines ``add_parser(subparsers)`` and ``run(args) -> int``.
Backends are reached only through :mod:`dpmodel.registry`. Errors end the program with
one line on stderr and a non-zero status; ``-v`` shows the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

from dpmodel.cli.parser import build_parser
from dpmodel.cli.log import setup_logging

__all__ = ["main"]

log = logging.getLogger("dpmodel.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dp`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner off the terminal
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    setup_logging(args.verbose - args.quiet, args.log_path)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print(f"dp {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that turns errors into a message
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"dp {args.command}: error: {message}", file=sys.stderr)
        return 1
