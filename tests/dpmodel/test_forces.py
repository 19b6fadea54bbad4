"""Analytic forces and virials against finite differences, and their conservation laws."""

import numpy as np
import pytest

from systems import make_model, random_system

STEP = 1e-5


def energy(model, coord, atype, box):
    return model.call(coord, atype, box)["energy"][:, 0]


def fd_forces(model, system):
    coord = system.coord
    forces = np.zeros_like(coord)
    for atom in range(coord.shape[1]):
        for axis in range(3):
            plus, minus = coord.copy(), coord.copy()
            plus[:, atom, axis] += STEP
            minus[:, atom, axis] -= STEP
            forces[:, atom, axis] = -(energy(model, plus, system.atype, system.box)
                                      - energy(model, minus, system.atype, system.box)) / (2 * STEP)
    return forces


def fd_virial(model, system):
    """Virial = -dE/d(strain) with coordinates and cell deformed together."""
    virial = np.zeros((system.coord.shape[0], 3, 3))
    for a in range(3):
        for b in range(3):
            strain = np.zeros((3, 3))
            strain[a, b] = STEP

            def deformed(sign):
                t = np.eye(3) + sign * strain
                box = None if system.box is None else (system.box.reshape(-1, 3, 3) @ t).reshape(-1, 9)
                return energy(model, system.coord @ t, system.atype, box)

            virial[:, a, b] = -(deformed(1) - deformed(-1)) / (2 * STEP)
    return virial.reshape(-1, 9)


CASES = {
    "triclinic": dict(kind="triclinic", natoms=16),
    "small_box": dict(kind="small"),
    "cluster": dict(kind="cluster", natoms=14),
}


@pytest.fixture(params=list(CASES))
def case(request):
    system = random_system(**CASES[request.param], nframes=2, seed=21)
    model = make_model(system, descriptor_options={"resnet_dt": True, "exclude_types": [[0, 1]],
                                                   "activation_function": "gelu"},
                       model_options={"pair_exclude_types": [[1, 1]]})
    return model, system


def test_forces_match_finite_differences(case):
    model, system = case
    out = model.call(system.coord, system.atype, system.box)
    fd = fd_forces(model, system)
    scale = np.abs(fd).max()
    assert scale > 1e-2  # the check is meaningful: forces are not negligible
    np.testing.assert_allclose(out["force"], fd, rtol=0, atol=1e-7 * scale)


def test_virial_matches_finite_differences(case):
    model, system = case
    out = model.call(system.coord, system.atype, system.box)
    fd = fd_virial(model, system)
    np.testing.assert_allclose(out["virial"], fd, rtol=0, atol=1e-7 * np.abs(fd).max())


def test_conservation_and_partitions(case):
    model, system = case
    out = model.call(system.coord, system.atype, system.box, do_atomic_virial=True)
    np.testing.assert_allclose(out["force"].sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out["atom_energy"].sum(axis=1), out["energy"], rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(out["atom_virial"].sum(axis=1), out["virial"], rtol=1e-12, atol=1e-12)


def test_rigid_motion_leaves_energy_unchanged(case):
    model, system = case
    ref = energy(model, system.coord, system.atype, system.box)
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    box = None if system.box is None else (system.box.reshape(-1, 3, 3) @ q).reshape(-1, 9)
    moved = energy(model, system.coord @ q + np.array([1.0, -2.0, 0.5]), system.atype, box)
    np.testing.assert_allclose(moved, ref, rtol=1e-13)


def test_atomic_virial_is_origin_independent():
    system = random_system("cluster", natoms=12, seed=6)
    model = make_model(system)
    a = model.call(system.coord, system.atype, None, do_atomic_virial=True)["atom_virial"]
    b = model.call(system.coord + 10.0, system.atype, None, do_atomic_virial=True)["atom_virial"]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-11)


def test_virtual_atoms_contribute_nothing():
    system = random_system("cluster", natoms=10, seed=4)
    model = make_model(system)
    ref = model.call(system.coord, system.atype, None)
    coord = np.concatenate([system.coord, np.zeros((2, 1, 3))], axis=1)
    atype = np.concatenate([system.atype, -np.ones((2, 1), dtype=int)], axis=1)
    out = model.call(coord, atype, None)
    np.testing.assert_allclose(out["energy"], ref["energy"], rtol=1e-14)
    np.testing.assert_allclose(out["force"][:, :-1], ref["force"], atol=1e-13)
    assert np.all(out["force"][:, -1] == 0) and np.all(out["atom_energy"][:, -1] == 0)


def test_atom_exclude_types_zero_atomic_energy():
    system = random_system("triclinic", seed=8)
    model = make_model(system, model_options={"atom_exclude_types": [1]})
    out = model.call(system.coord, system.atype, system.box)
    assert np.all(out["atom_energy"][system.atype == 1] == 0)
    assert np.any(out["atom_energy"][system.atype == 0] != 0)


@pytest.mark.parametrize("need_grad", [False, True])
def test_fitting_per_type_rows_equal_the_masked_nets(need_grad):
    """``split_types`` (each net on its own atoms) gives the masked evaluation's energies and gradients."""
    model = make_model(fitting_options={"exclude_types": [1]})
    rng = np.random.default_rng(5)
    descriptor = rng.normal(size=(2, 9, model.fitting.dim_descrpt))
    atype = rng.integers(0, 2, size=(2, 9))
    atype[1] = 0  # a frame without type 1
    split = model.fitting.call(descriptor, atype, need_grad=need_grad, split_types=True)
    masked = model.fitting.call(descriptor, atype, need_grad=need_grad)
    np.testing.assert_allclose(split[0], masked[0], rtol=1e-13, atol=1e-13)
    assert np.any(split[0] != 0.0) and np.all(split[0][atype == 1] == 0.0)
    if need_grad:
        np.testing.assert_allclose(split[1], masked[1], rtol=1e-13, atol=1e-13)
    else:
        assert split[1] is None and masked[1] is None


@pytest.mark.parametrize("need_grad", [False, True])
@pytest.mark.parametrize("counts", [(3, 6), (9, 0)])
def test_fitting_type_blocks_equal_the_masked_nets(need_grad, counts):
    """``type_blocks`` (static slices of atoms sorted by type) gives the masked evaluation's energies and
    gradients, with a type absent too; read from the wrong blocks it would not."""
    model = make_model()
    rng = np.random.default_rng(6)
    descriptor = rng.normal(size=(2, 9, model.fitting.dim_descrpt))
    atype = np.tile(np.repeat([0, 1], counts), (2, 1))
    blocks = model.fitting.call(descriptor, atype, need_grad=need_grad, type_blocks=counts)
    masked = model.fitting.call(descriptor, atype, need_grad=need_grad)
    np.testing.assert_allclose(blocks[0], masked[0], rtol=1e-13, atol=1e-13)
    if need_grad:
        np.testing.assert_allclose(blocks[1], masked[1], rtol=1e-13, atol=1e-13)
    if counts[1]:
        swapped = model.fitting.call(descriptor, atype, need_grad=need_grad, type_blocks=counts[::-1])
        assert not np.allclose(swapped[0], masked[0])
