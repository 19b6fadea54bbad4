"""Sample frames for checking a model file, and comparison of two evaluators' outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["OUTPUTS", "compare", "evaluate_frames", "sample_frames", "tolerance"]

#: outputs compared between evaluators
OUTPUTS = ("energy", "force", "virial")


def sample_frames(type_map: Sequence[str], rcut: float, sel: Sequence[int], nframes: int = 2,
                  seed: int = 20240601) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random periodic frames that fit a model: every type present, no neighbour beyond ``sel``.

    A cubic box of side ``2 rcut + 1`` Å holds ``min(max(sel_t, 1), 6)`` atoms of each
    type ``t`` placed at least 1 Å apart, so at most one image of each atom lies
    within ``rcut`` of another and the neighbour counts stay within ``sel``.

    Returns
    -------
    coord (nframes, nat, 3) Å, box (nframes, 9) Å, atype (nframes, nat) int
    """
    rng = np.random.default_rng(seed)
    side = 2.0 * rcut + 1.0
    counts = [min(max(int(s), 1), 6) for s in sel]
    atype = np.repeat(np.arange(len(type_map)), counts)
    coords = []
    for _ in range(nframes):
        placed: list[np.ndarray] = []
        while len(placed) < atype.size:
            trial = rng.uniform(0.0, side, 3)
            if all(_min_image(trial - p, side) >= 1.0 for p in placed):
                placed.append(trial)
        coords.append(np.stack(placed))
    box = np.tile((np.eye(3) * side).reshape(1, 9), (nframes, 1))
    return np.stack(coords), box, np.tile(atype, (nframes, 1))


def _min_image(delta: np.ndarray, side: float) -> float:
    delta = delta - side * np.round(delta / side)
    return float(np.linalg.norm(delta))


def evaluate_frames(evaluator, coord: np.ndarray, box: np.ndarray, atype: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs of an ``Evaluator`` on the frames with and without periodicity (keys ``pbc/...``, ``nopbc/...``)."""
    out = {}
    for name, cell in (("pbc", box), ("nopbc", None)):
        result = evaluator.evaluate(coord, cell, atype, None, None, False)
        out.update({f"{name}/{key}": np.asarray(result[key], dtype=np.float64) for key in OUTPUTS})
    return out


def tolerance(model: Mapping) -> float:
    """Allowed difference relative to ``1 + |reference|``: 1e-8 for float64 networks, 1e-4 otherwise."""
    precisions = {str(model.get("descriptor", {}).get("precision", "float64")),
                  str(model.get("fitting", {}).get("precision", "float64"))}
    return 1e-8 if precisions <= {"float64", "double", "default"} else 1e-4


def compare(reference: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Per output, ``max |other - reference| / (1 + max |reference|)``."""
    return {key: float(np.max(np.abs(other[key] - ref)) / (1.0 + np.max(np.abs(ref))))
            for key, ref in reference.items()}
