"""``dp neighbor-stat -s SYSTEM -r RCUT -t TYPE...``: closest pair and most neighbours per type."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "neighbor-stat", help="neighbour statistics of data",
        description="Print the smallest interatomic distance and the largest number of neighbours of each "
        "type within RCUT, and the sel that 'auto' would choose.")
    parser.add_argument("-s", "--system", default=".", help="system directory, or a folder searched for systems")
    parser.add_argument("-r", "--rcut", type=float, required=True, help="cut-off radius, Å")
    parser.add_argument("-t", "--type-map", nargs="+", required=True, help="element of each type")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from dpmodel.data import DeepmdSystem, expand_systems
    from dpmodel.training.neighbor_stat import auto_sel, neighbor_stat

    systems = [DeepmdSystem(path, args.type_map) for path in expand_systems(args.system)]
    stat = neighbor_stat(systems, args.rcut, len(args.type_map))
    print(f"systems: {len(systems)}, frames: {sum(s.nframes for s in systems)}")
    print(f"min_nbor_dist: {stat.min_dist:.6f}")
    print(f"max_nbor_size: {stat.max_count.tolist()}")
    print(f"sel (auto): {auto_sel(stat.max_count)}")
    return 0
