"""Neighbour search in O(N log N) or O(N) on the host (NumPy): k-d tree or cell list.

Gives exactly the list of :func:`dpmodel.neighbor.build_neighbor_list` (same distance
arithmetic, ties broken by extended index) for large systems. The pairs within ``rcut``
come from SciPy's k-d tree when SciPy is installed (a superset, queried with a slightly
larger radius), else from a cell list of ``rcut``-sized bins; either way the distances
that decide are recomputed here with the all-pairs arithmetic.
"""

from __future__ import annotations

import numpy as np

from dpmodel.neighbor import split_by_type

try:
    from scipy.spatial import cKDTree
except ImportError:  # SciPy is optional: the cell list needs nothing
    cKDTree = None

#: relative margin of the k-d tree query radius; the exact test is redone on our distances
_QUERY_MARGIN = 1e-9


def _distances(coord: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """|x_j - x_i| with the arithmetic of :func:`dpmodel.neighbor.build_neighbor_list`; Å."""
    diff = coord[j] - coord[i]
    return np.sqrt((diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1]) + diff[:, 2] * diff[:, 2])


def frame_pairs(coord: np.ndarray, atype: np.ndarray, nloc: int, rcut: float, search: str = "auto"):
    """(centre, neighbour, distance) of every pair within ``rcut`` in one frame.

    ``search`` is ``"kdtree"`` (needs SciPy), ``"cells"`` or ``"auto"`` (the k-d tree when
    SciPy is installed).
    """
    if search == "auto":
        search = "kdtree" if cKDTree is not None else "cells"
    if not np.any(atype[:nloc] >= 0):  # no real centre: no pairs
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=coord.dtype)
    if search == "kdtree":
        if cKDTree is None:
            raise ImportError("neighbour search 'kdtree' needs SciPy (pip install scipy)")
        i, j = _tree_candidates(coord, atype, nloc, rcut)
    elif search == "cells":
        i, j = _cell_candidates(coord, atype, nloc, rcut)
    else:
        raise ValueError(f"search = {search!r}: expected 'auto', 'kdtree' or 'cells'")
    dist = _distances(coord, i, j)
    keep = (dist <= rcut) & (i != j)
    return i[keep], j[keep], dist[keep]


def _tree_candidates(coord: np.ndarray, atype: np.ndarray, nloc: int, rcut: float):
    """(centre, neighbour) pairs within slightly more than ``rcut``, from two k-d trees.

    The second tree holds only the atoms inside the centres' bounding box grown by the
    radius (most ghosts of a periodic cell lie beyond it).
    """
    centres = np.nonzero(atype[:nloc] >= 0)[0]
    radius = rcut * (1.0 + _QUERY_MARGIN)
    low, high = coord[centres].min(axis=0) - radius, coord[centres].max(axis=0) + radius
    real = np.nonzero((atype >= 0) & np.all((coord >= low) & (coord <= high), axis=1))[0]
    pairs = cKDTree(coord[centres]).sparse_distance_matrix(cKDTree(coord[real]), radius, output_type="ndarray")
    return centres[pairs["i"]], real[pairs["j"]]


def _cell_candidates(coord: np.ndarray, atype: np.ndarray, nloc: int, rcut: float):
    """(centre, neighbour) pairs of atoms in adjacent ``rcut``-sized cells."""
    real = np.nonzero(atype >= 0)[0]
    origin = coord[real].min(axis=0)
    cell = np.floor((coord - origin) / rcut).astype(np.int64)
    dims = cell[real].max(axis=0) + 1
    bin_id = np.ravel_multi_index(cell[real].T, dims)
    order = np.argsort(bin_id, kind="stable")
    atoms_by_bin = real[order]
    sorted_bins = bin_id[order]
    nbins = int(np.prod(dims))
    start = np.searchsorted(sorted_bins, np.arange(nbins), side="left")
    stop = np.searchsorted(sorted_bins, np.arange(nbins), side="right")
    centres = np.nonzero(atype[:nloc] >= 0)[0]
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    target = cell[centres][:, None, :] + offsets  # (ncentre, 27, 3): the cells around each centre
    inside = np.all((target >= 0) & (target < dims), axis=-1)
    owner = np.broadcast_to(centres[:, None], inside.shape)[inside]
    b = np.ravel_multi_index(target[inside].T, dims)
    counts = stop[b] - start[b]
    i = np.repeat(owner, counts)
    first = np.repeat(start[b] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    j = atoms_by_bin[first]
    return i, j


def build_neighbor_list_cells(coord_ext: np.ndarray, atype_ext: np.ndarray, nloc: int, rcut: float,
                              sel: list[int], search: str = "auto") -> np.ndarray:
    """Same result as :func:`dpmodel.neighbor.build_neighbor_list`, by a k-d tree or a cell list.

    Parameters
    ----------
    coord_ext : shape (nf, nall, 3), float; Å (NumPy)
    atype_ext : shape (nf, nall), int
    nloc, rcut, sel : as in ``build_neighbor_list``
    search : ``"auto"``, ``"kdtree"`` or ``"cells"`` (see :func:`frame_pairs`)

    Returns
    -------
    nlist : shape (nf, nloc, sum(sel)), int64
    """
    coord_ext = np.asarray(coord_ext)
    atype_ext = np.asarray(atype_ext)
    nf = coord_ext.shape[0]
    nsel = sum(sel)
    sorted_lists = np.full((nf, nloc, nsel), -1, dtype=np.int64)
    for f in range(nf):
        i, j, dist = frame_pairs(coord_ext[f], atype_ext[f], nloc, rcut, search)
        rows = nearest_first(i, j, dist, nloc, coord_ext.shape[1])[:, :nsel]
        sorted_lists[f, :, :rows.shape[1]] = rows
    return split_by_type(sorted_lists, atype_ext, sel)


def nearest_first(i: np.ndarray, j: np.ndarray, dist: np.ndarray, nloc: int, nall: int) -> np.ndarray:
    """Neighbours of each centre by distance, ties by index: (nloc, max count), -1 after the last.

    The pairs are ordered by (centre, neighbour) once, laid out one row per centre, and
    each row sorted stably by distance: the order of a lexicographic sort by
    (centre, distance, neighbour) at the cost of short row sorts.
    """
    order = np.argsort(i * nall + j)
    i, j, dist = i[order], j[order], dist[order]
    counts = np.bincount(i, minlength=nloc)
    width = int(counts.max()) if i.size else 0
    rank = np.arange(i.size) - (np.cumsum(counts) - counts)[i]
    padded = np.full((nloc, width), np.inf)
    padded[i, rank] = dist
    columns = np.full((nloc, width), -1, dtype=np.int64)
    columns[i, rank] = j
    return np.take_along_axis(columns, np.argsort(padded, axis=1, kind="stable"), axis=1)
