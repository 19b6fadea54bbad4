"""A trimmed neighbour list (padding tails dropped, added back as constants) changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from dpmodel.env_mat import pair_displacements
from dpmodel.neighbor import narrow_neighbor_list, neighbor_data, slot_widths, trim_neighbor_list
from tests.systems import random_system, make_model

OPTIONS = {
    "base": {},
    "pair_exclude": {"model_options": {"pair_exclude_types": [[0, 1]]}},  # gaps inside blocks
    "exclude_types": {"descriptor_options": {"exclude_types": [[0, 0]]}},
    "float32": {"descriptor_options": {"precision": "float32"}, "fitting_options": {"precision": "float32"}},
}


def test_trim_keeps_every_neighbour_and_reports_widths():
    nlist = np.array([[[3, 5, -1, -1, 7, -1, -1], [4, -1, -1, -1, -1, 2, -1]]])
    trimmed, widths = trim_neighbor_list(nlist, [4, 3])
    assert widths == [2, 2]
    np.testing.assert_array_equal(trimmed, [[[3, 5, 7, -1], [4, -1, -1, 2]]])


def test_trim_of_an_empty_block_is_zero_wide():
    nlist = np.array([[[1, -1, -1]]])
    trimmed, widths = trim_neighbor_list(nlist, [1, 2])
    assert widths == [1, 0] and trimmed.shape == (1, 1, 1)


def test_narrow_to_fixed_widths_only_when_nothing_is_lost():
    """A list cut to fixed widths (the data's most neighbours) keeps every neighbour, or is left whole."""
    nlist = np.array([[[3, 5, -1, -1, 7, -1, -1], [4, -1, -1, -1, -1, 2, -1]]])
    narrowed, widths = narrow_neighbor_list(nlist, [4, 3], (3, 2))
    assert widths == (3, 2)
    np.testing.assert_array_equal(narrowed, [[[3, 5, -1, 7, -1], [4, -1, -1, -1, 2]]])
    same, none = narrow_neighbor_list(nlist, [4, 3], (1, 2))  # the first block fills 2 slots
    assert none is None and same is nlist
    assert narrow_neighbor_list(nlist, [4, 3], None)[1] is None
    assert slot_widths([6, 30], [10, 20]) == (6, 20)
    assert slot_widths([10, 30], [10, 20]) is None  # nothing to drop


@pytest.mark.parametrize("case", sorted(OPTIONS))
@pytest.mark.parametrize("kind", ["triclinic", "cluster"])
def test_trimmed_energy_and_pair_gradients_equal_the_full_list(case, kind):
    system = random_system(kind, natoms=16, seed=3)
    model = make_model(system, sel=(40, 40), **OPTIONS[case])
    coord_ext, atype_ext, _, nlist = neighbor_data(system.coord, system.atype, system.box, model.get_rcut(),
                                                   model.get_sel())
    nlist = model.exclude_pairs(atype_ext, nlist)
    trimmed, widths = trim_neighbor_list(nlist, model.get_sel())
    assert sum(widths) < nlist.shape[-1]  # the case really trims
    full = model.atomic_energy_from_pairs(pair_displacements(coord_ext, nlist), atype_ext, nlist, need_grad=True)
    part = model.atomic_energy_from_pairs(pair_displacements(coord_ext, trimmed), atype_ext, trimmed,
                                          need_grad=True, widths=widths)
    tol = 1e-5 if case == "float32" else 1e-12
    np.testing.assert_allclose(part[0], full[0], rtol=tol, atol=tol)
    # the pair gradients of the kept slots are the full list's; the dropped slots had none
    kept = model.descriptor._kept_slots(widths)
    np.testing.assert_allclose(part[2], full[2][:, :, kept], rtol=tol, atol=tol)
    dropped = np.setdiff1d(np.arange(nlist.shape[-1]), kept)
    assert np.all(full[2][:, :, dropped] == 0.0)
