"""Neighbour search on the host (NumPy): a distance matrix, a k-d tree or a cell list.

Gives exactly the list of :func:`dpmodel.neighbor.build_neighbor_list` (same distance
arithmetic, ties broken by extended index) without sorting every row of the all-pairs
distances. The pairs within ``rcut`` come from one of three searches, each giving a
superset (a slightly larger radius): squared distances from one matrix product over the
atoms in the centres' bounding box grown by ``rcut`` (small and medium systems), SciPy's
k-d tree, or a cell list of ``rcut``-sized bins. Either way the distances that decide are
recomputed here with the all-pairs arithmetic.
"""

from __future__ import annotations

import numpy as np

from dpmodel.host_threads import thread_map

try:
    from scipy.spatial import cKDTree
    from scipy.spatial.distance import cdist
except ImportError:  # SciPy is optional: the cell list and the matrix product need nothing
    cKDTree = cdist = None

#: relative margin of the k-d tree query radius; the exact test is redone on our distances
_QUERY_MARGIN = 1e-9
#: "auto" uses the distance matrix up to this many (centre, candidate) entries (8 bytes each)
DENSE_MAX_ENTRIES = 4_000_000


def _distances(coord: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """|x_j - x_i| with the arithmetic of :func:`dpmodel.neighbor.build_neighbor_list`; Å."""
    x, y, z = (np.ascontiguousarray(coord[:, k]) for k in range(3))
    dx, dy, dz = x[j] - x[i], y[j] - y[i], z[j] - z[i]
    return np.sqrt((dx * dx + dy * dy) + dz * dz)


def frame_pairs(coord: np.ndarray, atype: np.ndarray, nloc: int, rcut: float, search: str = "auto"):
    """(centre, neighbour, distance) of every pair within ``rcut`` in one frame.

    ``search`` is ``"dense"``, ``"kdtree"`` (needs SciPy), ``"cells"`` or ``"auto"`` (the
    distance matrix while it has at most :data:`DENSE_MAX_ENTRIES` entries, else the k-d
    tree when SciPy is installed, else the cell list). The pairs come ordered by centre,
    then neighbour.
    """
    if not np.any(atype[:nloc] >= 0):  # no real centre: no pairs
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=coord.dtype)
    centres, box_atoms = _box_atoms(coord, atype, nloc, rcut)
    if search == "auto":
        dense = centres.size * box_atoms.size <= DENSE_MAX_ENTRIES
        search = "dense" if dense else "kdtree" if cKDTree is not None else "cells"
    if search == "dense":
        i, j = _dense_candidates(coord, centres, box_atoms, rcut)
    elif search == "kdtree":
        if cKDTree is None:
            raise ImportError("neighbour search 'kdtree' needs SciPy (pip install scipy)")
        i, j = _tree_candidates(coord, centres, box_atoms, rcut)
    elif search == "cells":
        i, j = _cell_candidates(coord, atype, nloc, rcut)
    else:
        raise ValueError(f"search = {search!r}: expected 'auto', 'dense', 'kdtree' or 'cells'")
    dist = _distances(coord, i, j)
    keep = (dist <= rcut) & (i != j)
    return i[keep], j[keep], dist[keep]


def _box_atoms(coord: np.ndarray, atype: np.ndarray, nloc: int, rcut: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the real centres and of the real atoms inside their bounding box grown by
    slightly more than ``rcut`` (most ghosts of a periodic cell lie beyond it); both ascending."""
    centres = np.nonzero(atype[:nloc] >= 0)[0]
    radius = rcut * (1.0 + _QUERY_MARGIN)
    low, high = coord[centres].min(axis=0) - radius, coord[centres].max(axis=0) + radius
    inside = (atype >= 0) & np.all((coord >= low) & (coord <= high), axis=1)
    return centres, np.nonzero(inside)[0]


def _dense_candidates(coord: np.ndarray, centres: np.ndarray, box_atoms: np.ndarray, rcut: float):
    """(centre, neighbour) pairs within slightly more than ``rcut``, ordered by centre then
    neighbour, from the matrix of squared distances (SciPy's ``cdist`` when installed, else
    :math:`|a|^2 + |b|^2 - 2 a \\cdot b` about the centres' mean; the radius grows by far
    more than the rounding of either).
    """
    a, b = coord[centres], coord[box_atoms]
    if cdist is not None:
        squared, scale = cdist(a, b, "sqeuclidean"), 0.0
    else:
        origin = a.mean(axis=0)
        a, b = a - origin, b - origin
        a2, b2 = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
        squared = (a2[:, None] + b2[None, :]) - 2.0 * (a @ b.T)
        scale = float(a2.max()) + float(b2.max())
    hits = np.flatnonzero(squared <= rcut * rcut * (1.0 + 1e-8) + 1e-12 * scale)
    ii = hits // squared.shape[1]
    return centres[ii], box_atoms[hits - ii * squared.shape[1]]


def _tree_candidates(coord: np.ndarray, centres: np.ndarray, box_atoms: np.ndarray, rcut: float):
    """(centre, neighbour) pairs within slightly more than ``rcut``, from two k-d trees,
    ordered by centre then neighbour."""
    radius = rcut * (1.0 + _QUERY_MARGIN)
    pairs = cKDTree(coord[centres]).sparse_distance_matrix(cKDTree(coord[box_atoms]), radius, output_type="ndarray")
    i, j = centres[pairs["i"]], box_atoms[pairs["j"]]
    order = np.lexsort((j, i))
    return i[order], j[order]


def _cell_candidates(coord: np.ndarray, atype: np.ndarray, nloc: int, rcut: float):
    """(centre, neighbour) pairs of atoms in adjacent ``rcut``-sized cells, ordered by centre then neighbour."""
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
    order = np.lexsort((j, i))
    return i[order], j[order]


def build_neighbor_list_cells(coord_ext: np.ndarray, atype_ext: np.ndarray, nloc: int, rcut: float,
                              sel: list[int], search: str = "auto") -> np.ndarray:
    """Same result as :func:`dpmodel.neighbor.build_neighbor_list`, from :func:`frame_pairs`.

    Parameters
    ----------
    coord_ext : shape (nf, nall, 3), float; Å (NumPy)
    atype_ext : shape (nf, nall), int
    nloc, rcut, sel : as in ``build_neighbor_list``
    search : ``"auto"``, ``"dense"``, ``"kdtree"`` or ``"cells"`` (see :func:`frame_pairs`)

    Returns
    -------
    nlist : shape (nf, nloc, sum(sel)), int64

    Frames are searched on :func:`dpmodel.host_threads.thread_map`'s threads.
    """
    coord_ext = np.asarray(coord_ext)
    atype_ext = np.asarray(atype_ext)
    nf = coord_ext.shape[0]

    def frame_list(f: int) -> np.ndarray:
        i, j, dist = frame_pairs(coord_ext[f], atype_ext[f], nloc, rcut, search)
        return typed_rows(i, j, dist, atype_ext[f], nloc, sel)

    if nf == 0:
        return np.full((0, nloc, sum(sel)), -1, dtype=np.int64)
    return np.stack(thread_map(frame_list, range(nf)))


def typed_rows(i: np.ndarray, j: np.ndarray, dist: np.ndarray, atype: np.ndarray, nloc: int,
               sel: list[int]) -> np.ndarray:
    """One frame's neighbour list from its pairs (ordered by centre, then neighbour), (nloc, sum(sel)).

    The list keeps each centre's ``sum(sel)`` nearest neighbours, then block ``t`` takes the
    nearest ``sel[t]`` of type ``t`` among them. While no centre has more than ``sum(sel)``
    neighbours that first cut removes nothing, so each type's pairs are sorted on their own
    (shorter rows, no pass over the merged rows); otherwise the merged rows are sorted first.
    """
    if i.size and int(np.bincount(i, minlength=nloc).max()) > sum(sel):
        return split_rows_by_type(nearest_first(i, j, dist, nloc)[:, :sum(sel)], atype, sel)
    out = np.full((nloc, sum(sel)), -1, dtype=np.int64)
    neighbor_type = atype[j]
    start = 0
    for t, width in enumerate(sel):
        of_type = neighbor_type == t
        rows = nearest_first(i[of_type], j[of_type], dist[of_type], nloc)[:, :width]
        out[:, start:start + rows.shape[1]] = rows
        start += width
    return out


def split_rows_by_type(rows: np.ndarray, atype: np.ndarray, sel: list[int]) -> np.ndarray:
    """One frame's :func:`dpmodel.neighbor.split_by_type`: block ``t`` takes the first ``sel[t]``
    type-``t`` atoms of each distance-sorted row, in row order, padded with -1.

    Parameters
    ----------
    rows : shape (nloc, n), int; distance-sorted, -1 after each row's last
    atype : shape (nall,), int
    sel : slots per type

    Returns
    -------
    shape (nloc, sum(sel)), int64
    """
    ntype = np.where(rows >= 0, atype[rows], -1)
    out = np.full((rows.shape[0], sum(sel)), -1, dtype=np.int64)
    start = 0
    for t, width in enumerate(sel):
        is_t = ntype == t
        rank = np.cumsum(is_t, axis=1) - 1
        r, c = np.nonzero(is_t & (rank < width))
        out[r, start + rank[r, c]] = rows[r, c]
        start += width
    return out


def nearest_first(i: np.ndarray, j: np.ndarray, dist: np.ndarray, nloc: int) -> np.ndarray:
    """Neighbours of each centre by distance, ties by index: (nloc, max count), -1 after the last.

    The pairs, ordered by (centre, neighbour) as :func:`frame_pairs` gives them, are laid
    out one row per centre and each row is sorted by distance: the order of a lexicographic
    sort by (centre, distance, neighbour) at the cost of short row sorts. The rows are sorted
    by the faster unstable sort, and again stably (ties by neighbour index) only when some
    row holds two equal distances, as on a lattice.
    """
    counts = np.bincount(i, minlength=nloc)
    width = int(counts.max()) if i.size else 0
    rank = np.arange(i.size) - (np.cumsum(counts) - counts)[i]
    padded = np.full((nloc, width), np.inf)
    padded[i, rank] = dist
    columns = np.full((nloc, width), -1, dtype=np.int64)
    columns[i, rank] = j
    order = np.argsort(padded, axis=1)
    ordered = np.take_along_axis(padded, order, axis=1)
    if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] < np.inf)):
        order = np.argsort(padded, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1)
