"""Energies, forces and virials of the torch model (autograd) against dpmodel (analytic) and finite differences."""

import numpy as np
import pytest
import torch

from backends.pt import modules
from backends.pt.model import evaluate
from pt_helpers import CASES, SYSTEMS, TOL, assert_close, build, compare_outputs, precision, tensor


def run(wrapped, system, fparam=None, aparam=None, atype=None):
    atype = system.atype if atype is None else atype
    return evaluate(wrapped, tensor(system.coord), tensor(atype, torch.int64), tensor(system.box),
                    tensor(fparam), tensor(aparam), do_atomic_virial=True)


@pytest.mark.parametrize("kind", SYSTEMS)
@pytest.mark.parametrize("case", list(CASES))
def test_outputs_match_dpmodel(case, kind):
    model, system, fparam, aparam = build(case, kind)
    expected = model.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True)
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    out = run(wrapped, system, fparam, aparam)
    assert out["energy"].dtype == out["force"].dtype == torch.float64
    compare_outputs(out, expected, TOL[precision(case)])
    assert torch.equal(out["mask"].to(torch.int64), torch.as_tensor(expected["mask"]).to(torch.int64))


def test_virtual_atoms_contribute_nothing():
    model, system, *_ = build("base", "triclinic")
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    atype = system.atype.copy()
    atype[:, -3:] = -1
    expected = model.call(system.coord, atype, system.box, do_atomic_virial=True)
    out = run(wrapped, system, atype=atype)
    compare_outputs(out, expected, 1e-10)
    assert torch.all(out["force"][:, -3:] == 0) and torch.all(out["atom_energy"][:, -3:] == 0)
    # removing the virtual atoms gives the same energy
    real = type(system)(system.coord[:, :-3], system.atype[:, :-3], system.box)
    assert_close(run(wrapped, real)["energy"], out["energy"], 1e-10)


@pytest.mark.parametrize("kind", ["triclinic", "cluster"])
def test_forces_and_virial_by_finite_differences(kind):
    """F = -dE/dx and virial = -dE/d(strain), central differences with step 1e-5."""
    model, system, *_ = build("resnet_dt", kind, natoms=8)
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    frame = type(system)(system.coord[:1], system.atype[:1], None if system.box is None else system.box[:1])
    out = run(wrapped, frame)

    def energy(coord, box):
        moved = type(system)(coord, frame.atype, box)
        return float(run(wrapped, moved)["energy"][0, 0])

    h = 1e-5
    coord = frame.coord
    fd_force = np.zeros_like(coord[0])
    for i in range(coord.shape[1]):
        for a in range(3):
            plus, minus = coord.copy(), coord.copy()
            plus[0, i, a] += h
            minus[0, i, a] -= h
            fd_force[i, a] = -(energy(plus, frame.box) - energy(minus, frame.box)) / (2 * h)
    assert_close(out["force"][0], fd_force, 1e-6, "force")
    if frame.box is None:
        return
    fd_virial = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            strain = np.zeros((3, 3))
            strain[a, b] = h
            values = []
            for sign in (1.0, -1.0):
                deform = np.eye(3) + sign * strain
                values.append(energy(coord @ deform, (frame.box.reshape(1, 3, 3) @ deform).reshape(1, 9)))
            fd_virial[a, b] = -(values[0] - values[1]) / (2 * h)
    assert_close(out["virial"][0], fd_virial.reshape(9), 1e-6, "virial")
    assert_close(out["atom_virial"][0].sum(0), out["virial"][0], 1e-12, "atom_virial sums to virial")


def test_forward_keeps_graph_when_training():
    model, system, *_ = build("base")
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    wrapped.train()
    out = wrapped(tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box))
    assert out["force"].requires_grad and out["energy"].requires_grad
    (out["force"].square().sum() + out["energy"].sum()).backward()
    assert all(p.grad is not None for p in wrapped.parameters())
    wrapped.eval()
    out = wrapped(tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box))
    assert not out["force"].requires_grad
    with torch.no_grad():  # autograd forces still work inside no_grad
        again = wrapped(tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box))
    assert torch.equal(again["force"], out["force"])
