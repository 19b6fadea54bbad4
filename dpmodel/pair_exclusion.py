"""Excluded (centre type, neighbour type) pairs: the 0/1 table and the per-slot mask.

DeePMD-kit's ``exclude_types`` name unordered type pairs whose neighbours contribute
nothing; padding slots carry the extra type ``ntypes`` and are always kept. The table is
flat, index ``ti * (ntypes + 1) + tj``, so one gather gives the mask of every slot.
"""

from __future__ import annotations

import numpy as np

from dpmodel.xp import Array, array_namespace, as_array, take_rows


def pair_keep_table(ntypes: int, pairs, dtype=np.float64) -> np.ndarray:
    """Flat (ntypes + 1)**2 table: 0 for the unordered ``pairs``, 1 elsewhere (padding included)."""
    table = np.ones((ntypes + 1, ntypes + 1), dtype=dtype)
    for ti, tj in pairs:
        table[ti, tj] = table[tj, ti] = 0
    return table.reshape(-1)


def exclusion_mask(atype_ext: Array, nlist: Array, ntypes: int, pairs, dtype) -> Array:
    """1 where the (centre, neighbour) type pair of a slot is kept, 0 where excluded; (nf, nloc, nnei).

    Parameters
    ----------
    atype_ext : shape (nf, nall), int
    nlist : shape (nf, nloc, nnei), int; -1 for padding
    pairs : unordered type pairs to exclude
    dtype : NumPy dtype of the mask
    """
    xp = array_namespace(atype_ext, nlist)
    nf, nloc, nnei = nlist.shape
    real = nlist >= 0
    safe = xp.where(real, nlist, xp.zeros_like(nlist))
    ntype = xp.reshape(take_rows(atype_ext, xp.reshape(safe, (nf, nloc * nnei))), (nf, nloc, nnei))
    ntype = xp.where(real, ntype, xp.full_like(ntype, ntypes))
    pair = atype_ext[:, :nloc, None] * (ntypes + 1) + ntype
    table = as_array(xp, pair_keep_table(ntypes, pairs, dtype), nlist)
    return xp.reshape(xp.take(table, xp.reshape(pair, (-1,))), (nf, nloc, nnei))
