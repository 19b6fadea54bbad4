"""ASE calculator over any model file (eV, eV/Å, eV/Å³), for molecular dynamics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
except ImportError as err:  # pragma: no cover - exercised only without ase
    raise ImportError("dpmodel.calculator needs ASE: pip install '.[ase]'") from err

from dpmodel.infer import DeepPot


class DP(Calculator):
    """Energy, forces, stress and per-atom energies from a model file of any backend.

    Parameters
    ----------
    model : path to ``.dp``, ``.yaml``, ``.pth``, ``.jax``, ``.hlo``, ``.savedmodel`` or ``.pb``
    type_map : optional element -> model type index; by default from the model's type_map
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model: str | Path, type_map: dict[str, int] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dp = DeepPot(model)
        self.type_map = type_map or {name: i for i, name in enumerate(self.dp.get_type_map())}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        symbols = self.atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self.type_map))
        if unknown:
            raise PropertyNotImplementedError(
                f"elements {unknown} are not in the model's type_map {self.dp.get_type_map()}")
        atype = np.array([self.type_map[s] for s in symbols])
        coord = self.atoms.get_positions().reshape(1, -1)
        periodic = self.atoms.pbc.all()
        if self.atoms.pbc.any() and not periodic:
            raise PropertyNotImplementedError("partially periodic cells are not supported; use pbc all True or all False")
        cell = self.atoms.get_cell().array.reshape(1, 9) if periodic else None
        energy, force, virial, atom_energy, _ = self.dp.eval(coord, cell, atype, atomic=True)
        self.results["energy"] = self.results["free_energy"] = float(energy[0, 0])
        self.results["forces"] = force[0]
        self.results["energies"] = atom_energy[0, :, 0]
        if periodic:
            stress = -0.5 * (virial[0].reshape(3, 3) + virial[0].reshape(3, 3).T) / self.atoms.get_volume()
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]
        elif "stress" in properties:
            raise PropertyNotImplementedError("stress needs a periodic cell")
