"""The TorchScript program of ``.pth`` files against dpmodel, on inputs unlike the build example."""

import dataclasses
import logging

import numpy as np
import pytest
import torch

from backends.pt.scripted import script_model
from backends.pt.scripted_net import ScriptLayer
from backends.pt.scripted_neighbor import ScriptNeighborList
from backends.pt.scripted_table import ScriptTable
from dpmodel.activation import ACTIVATIONS
from dpmodel.compress import compress_model_dict
from dpmodel.model import EnergyModel
from dpmodel.network import Layer
from dpmodel.neighbor import neighbor_data
from dpmodel.registry import save_model_file
from pt_helpers import CASES, SYSTEMS, TOL, build, compare_outputs, precision, tensor
from systems import random_system

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(4, 4), (3, 6), (4, 5)])  # identity skip, concat skip, no skip
def test_layer_matches_dpmodel(name, shape):
    layer = Layer.create(*shape, use_timestep=True, activation_function=name, resnet=True, seed=3)
    x = np.random.default_rng(1).normal(scale=3.0, size=(2, 5, shape[0]))
    scripted = torch.jit.script(ScriptLayer(layer))
    np.testing.assert_allclose(scripted(torch.tensor(x)).numpy(), layer.call(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_program_matches_dpmodel(case):
    model, *_ = build(case, "triclinic")
    program = script_model(model)  # one program for every system kind
    for kind in SYSTEMS:
        _, system, fparam, aparam = build(case, kind)
        expected = model.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True)
        out = program(tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box),
                      tensor(fparam), tensor(aparam), True)
        compare_outputs(out, expected, TOL[precision(case)])


def test_program_generalises_beyond_one_example():
    """One program, many atom counts, type orders, cells, frame counts and virtual atoms."""
    model, *_ = build("exclude_types", "triclinic")
    program = script_model(model)
    inputs = []
    for seed, (kind, natoms, nframes) in enumerate([("triclinic", 12, 2), ("cubic", 30, 1), ("small", 5, 3),
                                                    ("cluster", 7, 1), ("triclinic", 40, 2)]):
        system = random_system(kind, natoms=natoms, nframes=nframes, seed=100 + seed)
        atype = np.random.default_rng(seed).permuted(system.atype, axis=1)  # another type order
        if seed == 4:
            atype[:, :5] = -1  # virtual atoms
        if system.box is not None and seed == 1:
            system.box = system.box * np.array([1.0, 1.1, 0.9] * 3)  # another cell
        inputs.append((system, atype))
    for system, atype in inputs:
        expected = model.call(system.coord, atype, system.box, do_atomic_virial=True)
        out = program(tensor(system.coord), tensor(atype, torch.int64), tensor(system.box), None, None, True)
        compare_outputs(out, expected, 1e-10)


def test_forward_lower_with_external_neighbor_list():
    model, system, *_ = build("pair_exclude", "small")
    program = script_model(model)
    coord_ext, atype_ext, mapping, nlist = neighbor_data(system.coord, system.atype, system.box, 4.0, [20, 20])
    expected = model.call_lower(coord_ext, atype_ext, nlist, mapping, do_atomic_virial=True)
    out = program.forward_lower(tensor(coord_ext), tensor(atype_ext, torch.int64), tensor(nlist, torch.int64),
                                tensor(mapping, torch.int64), None, None, True)
    compare_outputs(out, expected, 1e-10)


@pytest.mark.parametrize("sel", [[3, 2], [20, 20]])
def test_neighbor_list_equals_dpmodel_on_a_lattice_with_ties(sel):
    """Simple cubic lattice: shells of equal distances, ``sel`` cutting inside a shell (ties go to
    the lower extended index), virtual atoms, atoms exactly at ``rcut`` (2 Å, kept)."""
    grid = np.stack(np.meshgrid(*[np.arange(3.0)] * 3, indexing="ij"), axis=-1).reshape(1, 27, 3)
    atype = (np.arange(27) % 2).reshape(1, 27)
    atype[0, [4, 13]] = -1
    box = np.diag([3.0, 3.0, 3.0]).reshape(1, 9)
    expected = neighbor_data(grid, atype, box, 2.0, sel)
    program = ScriptNeighborList(2.0, sel, 2)
    out = program(tensor(grid), tensor(atype, torch.int64), tensor(box))
    def named(coord_ext, nlist):  # the position of every neighbour (ghosts are numbered differently)
        return np.where(nlist[..., None] >= 0, coord_ext[0][np.maximum(nlist, 0)], np.nan)

    nlist = out[3].numpy()
    np.testing.assert_array_equal(nlist >= 0, expected[3] >= 0)
    np.testing.assert_array_equal(named(out[0].numpy(), nlist), named(expected[0], expected[3]))


def test_program_metadata_and_missing_fparam():
    model, system, *_ = build("fparam_aparam")
    program = script_model(model, '{"type_map": ["T0", "T1"]}')
    assert program.get_type_map() == ["T0", "T1"]
    assert program.get_rcut() == 4.0 and program.get_sel() == [20, 20]
    assert (program.get_dim_fparam(), program.get_dim_aparam()) == (2, 3)
    assert program.get_model_def_script() == '{"type_map": ["T0", "T1"]}'
    with pytest.raises(torch.jit.Error, match="needs fparam"):
        program(tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box))
    with torch.no_grad(), pytest.raises(torch.jit.Error, match="gradients enabled"):
        program(tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box))


# ---------------------------------------------------------------------- compressed models
def _compressed_model(case: str = "resnet_dt"):
    """A compressed model, a system with one pair (0.42 Å) closer than its ``min_nbor_dist`` (1 Å)
    so that the pair's environment lies beyond the tables' bound, and the compressed dict."""
    model, system, *_ = build(case, "triclinic")
    system.coord[:, 1] = system.coord[:, 0] + np.array([0.35, 0.2, 0.1])
    data = compress_model_dict(model.serialize(), 1.0, step=0.01, extrapolate=1.2)
    return EnergyModel.deserialize(data), system, data


def test_table_matches_dpmodel_inside_at_the_ends_and_beyond():
    """Value summed over slots and autograd slope of every slot, against ``call_with_derivatives``."""
    model, *_ = _compressed_model()
    table = model.descriptor.tables[1]
    info = table.info
    knots = [info.lower, info.upper, info.bound, info.lower + 7 * info.stride1, info.upper + 3 * info.stride2]
    x = np.concatenate([knots, [info.lower - 2.5, info.lower - 1e-3, info.bound + 1e-3, info.bound + 7.0],
                        np.random.default_rng(0).uniform(info.lower, info.bound, 33)]).reshape(3, 2, 7, 1)
    value, slope = table.call_with_derivatives(x, 1)
    weight = np.random.default_rng(1).normal(size=table.ng)
    program = torch.jit.script(ScriptTable(table))
    xt = torch.tensor(x, requires_grad=True)
    out = program(xt)
    (grad,) = torch.autograd.grad([torch.sum(out * torch.tensor(weight))], [xt])
    np.testing.assert_allclose(out.detach().numpy(), value.sum(axis=2), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(grad.numpy()[..., 0], slope @ weight, rtol=1e-12, atol=1e-10)
    assert program(torch.zeros(2, 3, 0, 1, dtype=torch.float64)).shape == (2, 3, table.ng)


def test_compressed_pth_matches_dpmodel_beyond_the_table(tmp_path, caplog):
    """``torch.jit.load`` of a compressed ``.pth`` gives dpmodel's compressed outputs, also for a pair
    beyond the tables (linear continuation), and forces that are the gradient of its energy."""
    model, system, data = _compressed_model()
    with caplog.at_level(logging.WARNING, logger="dpmodel.table"):
        for table in model.descriptor.tables:
            table.info = dataclasses.replace(table.info, check_frequency=1)
        expected = model.call(system.coord, system.atype, system.box, do_atomic_virial=True)
    assert sum(table.overflow for table in model.descriptor.tables) > 0, "no input beyond the tables"
    plain = EnergyModel.deserialize({**data, "descriptor": {**data["descriptor"], "@version": 2, "compress": None}})
    assert np.abs(plain.call(system.coord, system.atype, system.box)["force"] - expected["force"]).max() > 1e-3
    save_model_file(tmp_path / "model.pth", {"model": data})
    program = torch.jit.load(str(tmp_path / "model.pth"))
    coord, atype, box = tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box)
    compare_outputs(program(coord, atype, box, None, None, True), expected, 1e-10)
    # forces against central differences of the energy, the close pair's atoms included
    force = program(coord, atype, box)["force"].numpy()
    step = 1e-5
    for atom in (0, 1, 5):
        for axis in range(3):
            energies = []
            for sign in (1.0, -1.0):
                moved = system.coord.copy()
                moved[:, atom, axis] += sign * step
                energies.append(program(tensor(moved), atype, box)["energy"].numpy()[:, 0])
            np.testing.assert_allclose(-(energies[0] - energies[1]) / (2 * step), force[:, atom, axis],
                                       rtol=1e-6, atol=1e-7, err_msg=f"atom {atom} axis {axis}")


def test_program_runs_the_nets_without_a_table():
    """A ``None`` table entry (an untabulated net) runs the net, beside tables of the other types."""
    model, system, _ = _compressed_model("exclude_types")
    model.descriptor.tables[0] = None
    expected = model.call(system.coord, system.atype, system.box, do_atomic_virial=True)
    program = script_model(model)
    assert ["rows" in dict(m.named_buffers()) for m in program.descriptor.embeddings] == [False, True]
    out = program(tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box), None, None, True)
    compare_outputs(out, expected, 1e-10)


@pytest.mark.parametrize("case", ["fparam_aparam", "atom_exclude", "pair_exclude", "exclude_types"])
def test_compressed_program_sums_tables_outside_autograd(case):
    """The table sums of a compressed program (CSR product forward, row dot products backward)
    give dpmodel's compressed outputs, per-atom ones included, and the outputs of the same
    program with autograd through ``embedding_bag`` sums."""
    model, system, fparam, aparam = build(case, "triclinic", natoms=13)
    compressed = EnergyModel.deserialize(compress_model_dict(model.serialize(), 0.5, step=0.01, extrapolate=5))
    expected = compressed.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True)
    program = script_model(compressed)
    assert program.descriptor.compressed and not script_model(model).descriptor.compressed
    inputs = (tensor(system.coord), tensor(system.atype, torch.int64), tensor(system.box), tensor(fparam),
              tensor(aparam), True)
    outside = program(*inputs)
    compare_outputs(outside, expected, 1e-10)
    program.descriptor.compressed = False  # autograd through the differentiable table sums
    through = program(*inputs)
    for key, value in through.items():
        np.testing.assert_allclose(outside[key].numpy(), value.numpy(), rtol=1e-12, atol=1e-12, err_msg=key)
