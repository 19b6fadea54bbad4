"""Seeded test systems and small models shared by the test suites."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpmodel.descriptor import DescrptSeR
from dpmodel.fitting import EnergyFitting
from dpmodel.model import EnergyModel
from dpmodel.stat import compute_descriptor_stat

WATER = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "water"
WATER_MISSING = f"the water data set {WATER} (../shared/data/water beside the checkout) is absent"


@dataclass
class System:
    """Frames of one configuration: coord (nf, nat, 3) Å, atype (nf, nat), box (nf, 9) or None."""

    coord: np.ndarray
    atype: np.ndarray
    box: np.ndarray | None


def random_system(kind: str = "triclinic", natoms: int = 24, ntypes: int = 2, nframes: int = 2,
                  seed: int = 0) -> System:
    """A random configuration with a minimum pair distance of about 1 Å.

    ``kind``: ``cubic`` (8 Å), ``triclinic`` (7-8 Å, skewed), ``small`` (face distance
    below the 4 Å cut-off: several images), ``cluster`` (no periodicity).
    """
    rng = np.random.default_rng(seed)
    if kind == "cubic":
        cell = np.eye(3) * 8.0
    elif kind == "triclinic":
        cell = np.array([[7.5, 0.0, 0.0], [1.2, 7.0, 0.0], [-0.8, 0.9, 7.8]])
    elif kind == "small":
        cell = np.array([[3.2, 0.0, 0.0], [0.5, 3.4, 0.0], [0.3, -0.4, 3.3]])
        natoms = min(natoms, 5)
    elif kind == "cluster":
        cell = np.eye(3) * 6.0
    else:
        raise ValueError(kind)
    coords = []
    for _ in range(nframes):
        frac = _spread_points(rng, natoms, cell, kind)
        coords.append(frac @ cell)
    coord = np.stack(coords)
    atype = np.tile(rng.integers(0, ntypes, natoms), (nframes, 1))
    atype[:, :ntypes] = np.arange(ntypes)  # every type present
    box = None if kind == "cluster" else np.tile(cell.reshape(1, 9), (nframes, 1))
    return System(coord, atype, box)


def _spread_points(rng: np.random.Generator, natoms: int, cell: np.ndarray, kind: str) -> np.ndarray:
    """Fractional coordinates with no two atoms (periodic images included) closer than ~1 Å."""
    points: list[np.ndarray] = []
    while len(points) < natoms:
        trial = rng.random(3)
        ok = True
        for p in points:
            d = trial - p
            if kind != "cluster":
                d = d - np.round(d)
            if np.linalg.norm(d @ cell) < 1.0:
                ok = False
                break
        if ok:
            points.append(trial)
    return np.array(points)


def make_model(system: System | None = None, rcut: float = 4.0, rcut_smth: float = 0.5, sel=(30, 30),
               neuron=(6, 12, 24), fitting=(32, 32, 32), ntypes: int = 2, seed: int = 1,
               descriptor_options: dict | None = None, fitting_options: dict | None = None,
               model_options: dict | None = None, descriptor_class=DescrptSeR) -> EnergyModel:
    """A small energy model with statistics from ``system`` so that forces are of order 1."""
    descriptor = descriptor_class(rcut, rcut_smth, list(sel), list(neuron), seed=seed, **(descriptor_options or {}))
    fit = EnergyFitting(ntypes, descriptor.dim_out, list(fitting), seed=seed + 1, **(fitting_options or {}))
    model = EnergyModel(descriptor, fit, [f"T{t}" for t in range(ntypes)], **(model_options or {}))
    if system is not None:
        compute_descriptor_stat(descriptor, [(system.coord, system.atype, system.box)])
    model.out_bias[0, :, 0] = np.linspace(-1.0, 1.0, ntypes)
    for net in fit.nets.networks:  # stronger output layer: forces of order 1 eV/Å
        net.layers[-1].w = net.layers[-1].w * 20.0
    return model


# ---------------------------------------------------------------- backend test cases
#: float tolerance per precision when a backend is compared with dpmodel
TOL = {"float64": 1e-10, "float32": 1e-5}

#: option cases shared by the backend suites: keyword arguments of :func:`make_model`
CASES: dict[str, dict] = {
    "base": {},
    "resnet_dt": {"descriptor_options": {"resnet_dt": True}},
    "exclude_types": {"descriptor_options": {"exclude_types": [[0, 1]]}},
    "env_protection": {"descriptor_options": {"env_protection": 0.3}},
    "gelu_softplus": {"descriptor_options": {"activation_function": "gelu"},
                      "fitting_options": {"activation_function": "softplus"}},
    "atom_exclude": {"model_options": {"atom_exclude_types": [1]}},
    "pair_exclude": {"model_options": {"pair_exclude_types": [[0, 0]]}},
    "fparam_aparam": {"fitting_options": {"numb_fparam": 2, "numb_aparam": 3, "exclude_types": [0]}},
    "default_fparam": {"fitting_options": {"numb_fparam": 1, "default_fparam": [0.7]}},
    "mixed_types": {"fitting_options": {"mixed_types": True}},
    "float32": {"descriptor_options": {"precision": "float32"}, "fitting_options": {"precision": "float32"}},
}
SYSTEMS = ("triclinic", "cluster", "small")


def precision(case: str) -> str:
    """Precision of a :data:`CASES` entry."""
    return "float32" if case == "float32" else "float64"
