"""Periodic cells: row-vector lattice, wrapping and face distances.

A cell is a (3, 3) matrix whose rows are the lattice vectors ``a, b, c`` (Å);
fractional and Cartesian coordinates are related by ``coord = frac @ cell``.
"""

from __future__ import annotations

from dpmodel.xp import Array, array_namespace


def _cells(cell: Array) -> Array:
    xp = array_namespace(cell)
    return xp.reshape(cell, (-1, 3, 3))


def inverse_cell(cell: Array) -> Array:
    """Inverse of each cell, shape (nf, 3, 3)."""
    return array_namespace(cell).linalg.inv(_cells(cell))


def to_fractional(coord: Array, cell: Array) -> Array:
    """Fractional coordinates, ``coord`` (nf, n, 3) Å -> (nf, n, 3)."""
    return array_namespace(coord, cell).matmul(coord, inverse_cell(cell))


def to_cartesian(frac: Array, cell: Array) -> Array:
    """Cartesian coordinates (Å) of fractional ``frac`` (nf, n, 3)."""
    return array_namespace(frac, cell).matmul(frac, _cells(cell))


def wrap_coord(coord: Array, cell: Array) -> Array:
    """Wrap every atom into the cell: fractional coordinates taken modulo 1.

    Parameters
    ----------
    coord : shape (nf, n, 3); Å
    cell : shape (nf, 9) or (nf, 3, 3); Å
    """
    xp = array_namespace(coord, cell)
    frac = to_fractional(coord, cell)
    frac = frac - xp.floor(frac)
    frac = xp.where(frac >= 1.0, frac - 1.0, frac)
    return to_cartesian(frac, cell)


def face_distances(cell: Array) -> Array:
    """Distances between opposite faces, ``V/|b x c|, V/|c x a|, V/|a x b|``; shape (nf, 3), Å."""
    xp = array_namespace(cell)
    cells = _cells(cell)
    a, b, c = cells[:, 0, :], cells[:, 1, :], cells[:, 2, :]
    volume = xp.abs(xp.sum(a * xp.linalg.cross(b, c), axis=-1))
    areas = [xp.linalg.vector_norm(xp.linalg.cross(u, v), axis=-1) for u, v in ((b, c), (c, a), (a, b))]
    return xp.stack([volume / area for area in areas], axis=-1)
