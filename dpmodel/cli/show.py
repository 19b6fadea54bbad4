"""``dp show MODEL ATTR...``: type map, descriptor and fitting settings, parameter counts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ATTRIBUTES", "add_parser", "count_parameters", "run"]

ATTRIBUTES = ("model-branch", "type-map", "descriptor", "fitting-net", "size")
_SKIP = {"@variables", "embeddings", "nets", "env_mat"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("show", help="show what a model file holds",
                                   description="Print properties of a model file (any suffix).")
    parser.add_argument("model", type=Path, help="model file")
    parser.add_argument("attributes", nargs="+", choices=ATTRIBUTES, metavar="ATTR",
                        help=f"one or more of: {', '.join(ATTRIBUTES)}")
    parser.set_defaults(run=run)
    return parser


def _networks_size(collection: dict) -> int:
    total = 0
    for net in collection.get("networks", []):
        for layer in (net or {}).get("layers", []):
            total += sum(int(np.size(v)) for v in layer.get("@variables", {}).values() if v is not None)
    return total


def count_parameters(model: dict) -> dict[str, int]:
    """Trainable-array sizes: ``descriptor`` (embedding nets), ``fitting-net``, ``total``."""
    sizes = {"descriptor": _networks_size(model["descriptor"].get("embeddings", {})),
             "fitting-net": _networks_size(model["fitting"].get("nets", {}))}
    sizes["total"] = sum(sizes.values())
    return sizes


def _settings(section: dict) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in _SKIP}


def run(args: argparse.Namespace) -> int:
    from dpmodel.registry import load_model_file

    data = load_model_file(args.model)
    model, script = data["model"], data.get("model_def_script") or {}
    for attribute in args.attributes:
        if attribute == "model-branch":
            print("model-branch: single-task model (no branches)")
        elif attribute == "type-map":
            print(f"type-map: {' '.join(model['type_map'])}")
        elif attribute == "descriptor":
            print(f"descriptor: {json.dumps(script.get('descriptor') or _settings(model['descriptor']))}")
        elif attribute == "fitting-net":
            print(f"fitting-net: {json.dumps(script.get('fitting_net') or _settings(model['fitting']))}")
        elif attribute == "size":
            sizes = count_parameters(model)
            print("size: " + ", ".join(f"{k} {v:,} parameters" for k, v in sizes.items()))
    return 0
