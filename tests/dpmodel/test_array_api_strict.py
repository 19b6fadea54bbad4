"""The same reference code runs unchanged on array-api-strict arrays."""

import numpy as np
import pytest

from dpmodel.neighbor import neighbor_data
from systems import make_model, random_system

xps = pytest.importorskip("array_api_strict")


def strict(a):
    return None if a is None else xps.asarray(a)


def host(a):
    return np.from_dlpack(a)


@pytest.mark.parametrize("kind", ["triclinic", "small", "cluster"])
def test_model_outputs_equal_numpy(kind):
    system = random_system(kind, seed=11)
    model = make_model(system, descriptor_options={"exclude_types": [[0, 1]], "resnet_dt": True},
                       model_options={"pair_exclude_types": [[1, 1]]})
    ref = model.call(system.coord, system.atype, system.box, do_atomic_virial=True)
    with xps.ArrayAPIStrictFlags(data_dependent_shapes=True):
        got = model.call(strict(system.coord), strict(system.atype), strict(system.box), do_atomic_virial=True)
    for key in ("energy", "atom_energy", "force", "virial", "atom_virial"):
        assert isinstance(got[key], type(xps.asarray(0.0)))
        np.testing.assert_allclose(host(got[key]), ref[key], rtol=1e-12, atol=1e-12, err_msg=key)


def test_descriptor_and_neighbor_list_equal_numpy():
    system = random_system("triclinic", seed=12)
    model = make_model(system)
    desc = model.descriptor
    ref_ext = neighbor_data(system.coord, system.atype, system.box, desc.rcut, desc.sel)
    got_ext = neighbor_data(strict(system.coord), strict(system.atype), strict(system.box), desc.rcut, desc.sel,
                            method="all-pairs")
    for a, b in zip(ref_ext, got_ext):
        np.testing.assert_array_equal(host(b), a)
    got = desc.call(got_ext[0], got_ext[1], got_ext[3])
    np.testing.assert_allclose(host(got), desc.call(ref_ext[0], ref_ext[1], ref_ext[3]), rtol=0, atol=1e-13)
