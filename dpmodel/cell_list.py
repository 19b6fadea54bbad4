"""O(N) neighbour search with a cell list (NumPy, host side).

Gives exactly the list of :func:`dpmodel.neighbor.build_neighbor_list` (same distance
arithmetic, ties broken by extended index) in linear time, for large systems.
"""

from __future__ import annotations

import numpy as np

from dpmodel.neighbor import split_by_type


def _frame_candidates(coord: np.ndarray, atype: np.ndarray, nloc: int, rcut: float):
    """(centre, neighbour, distance) of every pair within ``rcut`` in one frame."""
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
    diff = coord[j] - coord[i]
    dist = np.sqrt((diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1]) + diff[:, 2] * diff[:, 2])
    keep = (dist <= rcut) & (i != j)
    return i[keep], j[keep], dist[keep]


def build_neighbor_list_cells(coord_ext: np.ndarray, atype_ext: np.ndarray, nloc: int, rcut: float,
                              sel: list[int]) -> np.ndarray:
    """Same result as :func:`dpmodel.neighbor.build_neighbor_list`, by a cell list.

    Parameters
    ----------
    coord_ext : shape (nf, nall, 3), float; Å (NumPy)
    atype_ext : shape (nf, nall), int
    nloc, rcut, sel : as in ``build_neighbor_list``

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
        i, j, dist = _frame_candidates(coord_ext[f], atype_ext[f], nloc, rcut)
        order = np.lexsort((j, dist, i))
        i, j = i[order], j[order]
        first = np.searchsorted(i, np.arange(nloc), side="left")
        rank = np.arange(i.size) - first[i]
        keep = rank < nsel
        sorted_lists[f, i[keep], rank[keep]] = j[keep]
    return split_by_type(sorted_lists, atype_ext, sel)
