"""The TorchScript program of ``.pth`` files against dpmodel, on inputs unlike the build example."""

import numpy as np
import pytest
import torch

from backends.pt.scripted import ScriptLayer, script_model
from dpmodel.activation import ACTIVATIONS
from dpmodel.network import Layer
from dpmodel.neighbor import neighbor_data
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
