"""The ASE calculator: forces and stress against ASE's own finite differences."""

import numpy as np
import pytest

ase = pytest.importorskip("ase")
from ase import Atoms  # noqa: E402
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress  # noqa: E402

from dpmodel import io  # noqa: E402
from dpmodel.calculator import DP  # noqa: E402
from systems import make_model, random_system  # noqa: E402


@pytest.fixture
def atoms(tmp_path):
    system = random_system("triclinic", natoms=12, nframes=1, seed=31)
    model = make_model(system)
    model.type_map = ["Cu", "Au"]
    path = tmp_path / "model.dp"
    io.save(path, {"model": model.serialize()})
    symbols = [model.type_map[t] for t in system.atype[0]]
    atoms = Atoms(symbols, positions=system.coord[0], cell=system.box[0].reshape(3, 3), pbc=True)
    atoms.calc = DP(path)
    return atoms


def test_forces_and_stress_match_ase_finite_differences(atoms):
    np.testing.assert_allclose(atoms.get_forces(), calculate_numerical_forces(atoms, eps=1e-5), atol=1e-6)
    np.testing.assert_allclose(atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-6), atol=1e-6)


def test_atomic_energies_sum_to_energy(atoms):
    assert atoms.get_potential_energies().sum() == pytest.approx(atoms.get_potential_energy(), rel=1e-13)
