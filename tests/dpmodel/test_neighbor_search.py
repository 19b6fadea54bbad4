"""The k-d tree and cell-list searches give exactly the all-pairs neighbour list."""

from __future__ import annotations

import numpy as np
import pytest

from dpmodel import cell_list
from dpmodel.cell_list import build_neighbor_list_cells, cKDTree
from dpmodel.neighbor import build_neighbor_list, extend_coord_with_ghosts, neighbor_data
from dpmodel.region import wrap_coord
from tests.systems import random_system

SEARCHES = ["dense", "dense-without-scipy", "cells",
            pytest.param("kdtree", marks=pytest.mark.skipif(cKDTree is None, reason="SciPy is not installed"))]


@pytest.fixture(autouse=True)
def _search_without_scipy(request, monkeypatch):
    """``dense-without-scipy``: the matrix-product form of the squared distances (no ``cdist``)."""
    search = request.node.callspec.params.get("search") if hasattr(request.node, "callspec") else None
    if search == "dense-without-scipy":
        monkeypatch.setattr(cell_list, "cdist", None)


def _search(search):
    return "dense" if search == "dense-without-scipy" else search


def _extended(coord, atype, box, rcut):
    if box is not None:
        coord = wrap_coord(coord, box)
    coord_ext, atype_ext, _ = extend_coord_with_ghosts(coord, atype, box, rcut)
    return coord_ext, atype_ext


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("kind", ["triclinic", "small", "cluster"])
@pytest.mark.parametrize("sel", [(30, 30), (3, 2)])  # (3, 2): more neighbours than slots
def test_same_list_as_all_pairs(search, kind, sel):
    system = random_system(kind, natoms=20, seed=11)
    coord_ext, atype_ext = _extended(system.coord, system.atype, system.box, 4.0)
    nloc = system.atype.shape[1]
    expected = build_neighbor_list(coord_ext, atype_ext, nloc, 4.0, list(sel))
    found = build_neighbor_list_cells(coord_ext, atype_ext, nloc, 4.0, list(sel), search=_search(search))
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize("search", SEARCHES)
def test_ties_on_a_lattice_and_virtual_atoms(search):
    """A cubic lattice has many equal distances (ties go to the smaller extended index);
    a virtual atom (type -1) is neither a centre's neighbour nor a centre; rcut on a shell."""
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(1, -1, 3) * 2.0
    atype = (np.arange(27) % 2).reshape(1, -1)
    atype[0, 5] = -1
    box = (np.eye(3) * 6.0).reshape(1, 9)
    coord_ext, atype_ext = _extended(grid, atype, box, 4.0)
    for sel in ([20, 20], [4, 3]):
        expected = build_neighbor_list(coord_ext, atype_ext, 27, 4.0, sel)
        found = build_neighbor_list_cells(coord_ext, atype_ext, 27, 4.0, sel, search=_search(search))
        np.testing.assert_array_equal(found, expected)
    assert not np.any(found == 5)


def test_unknown_search_is_an_error():
    system = random_system("cluster", natoms=4, seed=1)
    with pytest.raises(ValueError, match="search = 'octree'"):
        build_neighbor_list_cells(system.coord, system.atype, 4, 4.0, [4, 4], search="octree")


@pytest.mark.parametrize("kind", ["triclinic", "small", "cluster"])
def test_neighbor_data_default_search_matches_all_pairs(kind):
    """``neighbor_data`` on NumPy input (the host search) gives the all-pairs list."""
    system = random_system(kind, natoms=30, seed=5)
    found = neighbor_data(system.coord, system.atype, system.box, 4.0, [12, 12])
    expected = neighbor_data(system.coord, system.atype, system.box, 4.0, [12, 12], method="all-pairs")
    for a, b in zip(found, expected):
        np.testing.assert_array_equal(a, b)
