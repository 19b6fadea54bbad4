"""Ghost atoms for periodic boundaries and the fixed-``sel`` neighbour list.

Layout conventions follow DeePMD-kit v3: extended atoms are laid out shift-major
(``ext[s * nloc + i] = coord[i] + shift[s]``) with shifts sorted by the norm of their
integer triple, so the first ``nloc`` extended atoms are the local atoms; the
neighbour list has ``sel[t]`` slots per neighbour type, each block sorted by
distance and padded with -1.
"""

from __future__ import annotations

import math

import numpy as np

from dpmodel import neighbor_cache
from dpmodel.region import face_distances, wrap_coord
from dpmodel.xp import Array, array_namespace, take_rows


def image_shifts(cell: Array, rcut: float) -> np.ndarray:
    """Integer lattice shifts needed to see every neighbour within ``rcut``.

    Returns
    -------
    numpy array, shape (ns, 3), int; sorted by norm, ``(0, 0, 0)`` first. The same set
    serves every frame (the largest needed over frames).
    """
    faces = np.asarray(face_distances(cell))
    nbuff = np.ceil(rcut / faces).astype(int).max(axis=0)
    return shift_grid(nbuff)


def shift_grid(nbuff: tuple[int, int, int] | np.ndarray) -> np.ndarray:
    """All integer triples with ``|s_k| <= nbuff[k]``, sorted by norm (stable), ``(0, 0, 0)`` first.

    Returns
    -------
    numpy array, shape (prod(2 * nbuff + 1), 3), int
    """
    axes = [np.arange(-int(n), int(n) + 1) for n in nbuff]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid[np.argsort(np.linalg.norm(grid, axis=1), kind="stable")]


def extend_coord_with_ghosts(coord: Array, atype: Array, cell: Array | None, rcut: float,
                             shifts: np.ndarray | None = None) -> tuple[Array, Array, Array]:
    """Local atoms plus their periodic images within reach of ``rcut``.

    Parameters
    ----------
    coord : shape (nf, nloc, 3); Å. Should already be wrapped into the cell.
    atype : shape (nf, nloc), int
    cell : shape (nf, 9) or None for no periodicity; Å
    rcut : cut-off radius; Å
    shifts : shape (ns, 3), int, optional. A fixed shift set (e.g. :func:`shift_grid`)
        instead of :func:`image_shifts` of ``cell``: it keeps ``nall`` independent of the
        cell values, as jit compilation needs; it must reach ``rcut`` for the result to
        be complete.

    Returns
    -------
    coord_ext : shape (nf, nall, 3); Å
    atype_ext : shape (nf, nall), int
    mapping : shape (nf, nall), int64; local index of every extended atom
    """
    xp = array_namespace(coord, atype, cell)
    nf, nloc = atype.shape
    device = getattr(coord, "device", None)
    if cell is None:
        mapping = xp.broadcast_to(xp.arange(nloc, dtype=xp.int64, device=device), (nf, nloc))
        return coord, atype, mapping
    if shifts is None:
        shifts = image_shifts(cell, rcut)
    ns = shifts.shape[0]
    shift_int = xp.asarray(shifts.astype(np.float64), dtype=coord.dtype, device=device)
    shift_vec = xp.matmul(shift_int, xp.reshape(cell, (nf, 3, 3)))  # (nf, ns, 3)
    coord_ext = xp.reshape(coord[:, None, :, :] + shift_vec[:, :, None, :], (nf, ns * nloc, 3))
    atype_ext = xp.reshape(xp.broadcast_to(atype[:, None, :], (nf, ns, nloc)), (nf, ns * nloc))
    local = xp.arange(nloc, dtype=xp.int64, device=device)
    mapping = xp.broadcast_to(xp.reshape(xp.concat([local] * ns), (1, ns * nloc)), (nf, ns * nloc))
    return coord_ext, atype_ext, mapping


def build_neighbor_list(coord_ext: Array, atype_ext: Array, nloc: int, rcut: float, sel: list[int]) -> Array:
    """Type-split, distance-sorted neighbour list by an all-pairs search.

    The ``sum(sel)`` nearest atoms within ``rcut`` are kept regardless of type, then
    split into ``sel[t]`` slots per neighbour type (nearest first, -1 padding).
    Virtual atoms (type < 0) are nobody's neighbour and have no neighbours.

    Parameters
    ----------
    coord_ext : shape (nf, nall, 3); Å
    atype_ext : shape (nf, nall), int
    nloc : number of local atoms (the first ``nloc`` extended atoms)
    rcut : cut-off radius; Å
    sel : maximum neighbours per type

    Returns
    -------
    nlist : shape (nf, nloc, sum(sel)), int64
    """
    xp = array_namespace(coord_ext, atype_ext)
    nf, nall = atype_ext.shape
    nsel = sum(sel)
    virtual = atype_ext < 0
    far = xp.max(coord_ext) + 2.0 * rcut
    coord = xp.where(virtual[..., None], far, coord_ext)
    diff = coord[:, None, :, :] - coord[:, :nloc, None, :]
    dist = xp.sqrt(xp.sum(diff * diff, axis=-1))  # (nf, nloc, nall)
    self_mask = xp.astype(xp.eye(nloc, nall, dtype=xp.int64) == 1, dist.dtype)
    dist = dist - self_mask
    order = xp.argsort(dist, axis=-1, stable=True)[:, :, 1:]
    return _finish_nlist(xp, order, dist, atype_ext, nloc, rcut, sel, nsel)


def _finish_nlist(xp, order: Array, dist: Array, atype_ext: Array, nloc: int, rcut: float, sel: list[int], nsel: int) -> Array:
    """Truncate sorted candidates to ``nsel``, drop those beyond ``rcut``, split by type."""
    nf = order.shape[0]
    width = order.shape[2]
    if width < nsel:
        pad = xp.full((nf, nloc, nsel - width), -1, dtype=order.dtype)
        order = xp.concat([order, pad], axis=-1)
    order = order[:, :, :nsel]
    real = order >= 0
    safe = xp.where(real, order, xp.zeros_like(order))
    d = xp.reshape(take_rows(xp.reshape(dist, (nf * nloc, -1)), xp.reshape(safe, (nf * nloc, nsel))), (nf, nloc, nsel))
    keep = real & (d <= rcut)
    keep = keep & (atype_ext[:, :nloc, None] >= 0)
    nlist = xp.where(keep, order, xp.full_like(order, -1))
    return split_by_type(nlist, atype_ext, sel)


def split_by_type(nlist: Array, atype_ext: Array, sel: list[int]) -> Array:
    """Regroup a distance-sorted list into ``sel[t]`` slots per neighbour type.

    Parameters
    ----------
    nlist : shape (nf, nloc, n), int; distance-sorted, -1 for none.
    atype_ext : shape (nf, nall), int
    sel : slots per type

    Returns
    -------
    shape (nf, nloc, sum(sel)); block ``t`` holds the nearest ``sel[t]`` neighbours of type ``t``.
    """
    xp = array_namespace(nlist, atype_ext)
    nf, nloc, n = nlist.shape
    real = nlist >= 0
    safe = xp.where(real, nlist, xp.zeros_like(nlist))
    ntype = xp.reshape(take_rows(atype_ext, xp.reshape(safe, (nf, nloc * n))), (nf, nloc, n))
    ntype = xp.where(real, ntype, xp.full_like(ntype, -1))
    blocks = []
    for t, width in enumerate(sel):
        is_t = ntype == t
        # stable sort puts type-t entries first while keeping their distance order
        key = xp.astype(~is_t, xp.int64)
        order = xp.argsort(key, axis=-1, stable=True)
        picked = xp.reshape(take_rows(xp.reshape(nlist, (nf * nloc, n)), xp.reshape(order, (nf * nloc, n))), (nf, nloc, n))
        valid = xp.reshape(take_rows(xp.reshape(is_t, (nf * nloc, n)), xp.reshape(order, (nf * nloc, n))), (nf, nloc, n))
        block = xp.where(valid, picked, xp.full_like(picked, -1))
        if n < width:
            block = xp.concat([block, xp.full((nf, nloc, width - n), -1, dtype=block.dtype)], axis=-1)
        blocks.append(block[:, :, :width])
    return xp.concat(blocks, axis=-1)


def trim_neighbor_list(nlist: Array, sel: list[int]) -> tuple[Array, list[int]]:
    """Drop the trailing slots of each type block that are padding in every row.

    The slots dropped hold no neighbour, so they contribute only a constant per centre
    type to the descriptor (:meth:`dpmodel.descriptor.DescrptSeR.forward_pairs` adds it
    back from ``widths``); every per-pair array shrinks accordingly. Needs a concrete
    (not traced) ``nlist``.

    Parameters
    ----------
    nlist : shape (nf, nloc, sum(sel)), int; type-split, -1 for padding
    sel : slots per neighbour type

    Returns
    -------
    trimmed : shape (nf, nloc, sum(widths)); the first ``widths[t]`` slots of block ``t``
    widths : kept slots per type, ``widths[t] <= sel[t]``
    """
    widths = used_widths(nlist, sel)
    return cut_neighbor_list(nlist, sel, widths), widths


def used_widths(nlist: Array, sel: list[int]) -> list[int]:
    """Per type block, the slots up to the last one holding a neighbour in any row (concrete ``nlist``)."""
    xp = array_namespace(nlist)
    widths, start = [], 0
    for width in sel:
        block = nlist[..., start:start + width]
        position = xp.reshape(xp.arange(1, width + 1, dtype=nlist.dtype), (1, 1, width))
        last = xp.where(block >= 0, position, xp.zeros_like(block))
        widths.append(int(xp.max(last)) if math.prod(last.shape) else 0)
        start += width
    return widths


def cut_neighbor_list(nlist: Array, sel: list[int], widths: list[int]) -> Array:
    """The first ``widths[t]`` slots of each type block ``t`` of ``nlist`` (nf, nloc, sum(sel));
    the others must be padding (:func:`used_widths` at most ``widths``)."""
    xp = array_namespace(nlist)
    starts = np.cumsum([0, *sel])[:-1]
    return xp.concat([nlist[..., int(a):int(a) + w] for a, w in zip(starts, widths)], axis=-1)


def narrow_neighbor_list(nlist: Array, sel: list[int], widths: tuple[int, ...] | None
                         ) -> tuple[Array, tuple[int, ...] | None]:
    """``nlist`` cut to ``widths`` (:func:`cut_neighbor_list`) and ``widths``, when given and
    no row fills a slot beyond them; else ``nlist`` unchanged and None (concrete ``nlist``)."""
    if widths is None or any(u > w for u, w in zip(used_widths(nlist, sel), widths)):
        return nlist, None
    return cut_neighbor_list(nlist, sel, list(widths)), tuple(widths)


def slot_widths(max_count: list[int] | np.ndarray, sel: list[int]) -> tuple[int, ...] | None:
    """Slots to keep per type for neighbour lists with at most ``max_count[t]`` neighbours of
    type ``t`` (the slots beyond are padding in every row); None when that is all of ``sel``."""
    widths = tuple(min(int(s), int(c)) for c, s in zip(max_count, sel))
    return None if list(widths) == [int(s) for s in sel] else widths


def neighbor_data(coord: Array, atype: Array, cell: Array | None, rcut: float, sel: list[int],
                  method: str = "auto") -> tuple[Array, Array, Array, Array]:
    """Wrap, extend with ghosts and build the neighbour list in one call.

    ``method`` is ``"all-pairs"``, ``"cells"`` (NumPy only: :func:`dpmodel.cell_list.build_neighbor_list_cells`,
    which finds the pairs within ``rcut`` first and sorts only those) or ``"auto"``: ``"cells"``
    for NumPy inputs, else ``"all-pairs"``. Both give the same list.

    Parameters
    ----------
    coord : shape (nf, nloc, 3); Å
    atype : shape (nf, nloc), int
    cell : shape (nf, 9) or None; Å

    Returns
    -------
    coord_ext (nf, nall, 3), atype_ext (nf, nall), mapping (nf, nall), nlist (nf, nloc, sum(sel));
    read-only NumPy arrays when a :mod:`dpmodel.neighbor_cache` is active (training).
    """
    cache = neighbor_cache.active()
    numpy_input = all(isinstance(a, np.ndarray) for a in (coord, atype) + (() if cell is None else (cell,)))
    if cache is not None and numpy_input:
        key = cache.key(coord, atype, cell, rcut, sel, method)
        return cache.get_or_build(key, lambda: _neighbor_data(coord, atype, cell, rcut, sel, method))
    return _neighbor_data(coord, atype, cell, rcut, sel, method)


def _neighbor_data(coord: Array, atype: Array, cell: Array | None, rcut: float, sel: list[int],
                   method: str) -> tuple[Array, Array, Array, Array]:
    if cell is not None:
        coord = wrap_coord(coord, cell)
    coord_ext, atype_ext, mapping = extend_coord_with_ghosts(coord, atype, cell, rcut)
    nloc = atype.shape[1]
    if method == "auto":
        numpy_input = isinstance(coord_ext, np.ndarray) and isinstance(atype_ext, np.ndarray)
        method = "cells" if numpy_input else "all-pairs"
    if method == "cells":
        from dpmodel.cell_list import build_neighbor_list_cells

        nlist = build_neighbor_list_cells(coord_ext, atype_ext, nloc, rcut, sel)
    else:
        nlist = build_neighbor_list(coord_ext, atype_ext, nloc, rcut, sel)
    return coord_ext, atype_ext, mapping, nlist
