r"""Radial environment matrix of ``se_e2_r``.

For centre :math:`i` and neighbour slot :math:`j` holding atom :math:`n`,
:math:`\mathbf d_{ij} = \mathbf x_n - \mathbf x_i`, :math:`r_{ij} = |\mathbf d_{ij}|`,

.. math:: s_{ij} = \frac{w(r_{ij})}{r_{ij} + p},
          \qquad \hat s_{ij} = m_{ij}\,\frac{s_{ij} - \mu_{t_i j}}{\sigma_{t_i j}},

with :math:`p` = ``env_protection``, :math:`\mu, \sigma` = ``davg``, ``dstd`` indexed by
the centre type, and :math:`m_{ij}` the exclusion mask. Padding slots have
:math:`s = 0` and are normalised too (they become :math:`-\mu/\sigma`).
"""

from __future__ import annotations

from dataclasses import dataclass

from dpmodel.switch import switch
from dpmodel.xp import Array, array_namespace, take_rows


@dataclass
class RadialEnv:
    """Raw radial environment of every (centre, slot) pair.

    Attributes
    ----------
    s : shape (nf, nloc, nnei); 1/Å. Zero in padding slots.
    ds_dr : shape (nf, nloc, nnei); 1/Å². Zero in padding slots.
    diff : shape (nf, nloc, nnei, 3); Å. Neighbour minus centre, zero for padding.
    r : shape (nf, nloc, nnei); Å. Padding slots hold a dummy positive distance.
    sw : shape (nf, nloc, nnei); switch value, zero for padding.
    """

    s: Array
    ds_dr: Array
    diff: Array
    r: Array
    sw: Array


def pair_displacements(coord_ext: Array, nlist: Array) -> Array:
    """Displacement of every neighbour from its centre, zero in padding slots.

    Parameters
    ----------
    coord_ext : shape (nf, nall, 3), float; Å. Local atoms first.
    nlist : shape (nf, nloc, nnei), int; indices into ``nall``, -1 for padding.

    Returns
    -------
    diff : shape (nf, nloc, nnei, 3); Å, neighbour minus centre.
    """
    xp = array_namespace(coord_ext, nlist)
    nf, nloc, nnei = nlist.shape
    real = nlist >= 0
    index = xp.where(real, nlist, xp.zeros_like(nlist))
    neighbours = take_rows(coord_ext, xp.reshape(index, (nf, nloc * nnei)))
    neighbours = xp.reshape(neighbours, (nf, nloc, nnei, 3))
    centres = xp.reshape(coord_ext[:, :nloc, :], (nf, nloc, 1, 3))
    return (neighbours - centres) * xp.astype(real, coord_ext.dtype)[..., None]


def radial_env(diff: Array, nlist: Array, rcut: float, rcut_smth: float, protection: float = 0.0) -> RadialEnv:
    """Compute :math:`s_{ij}` and its radial derivative from pair displacements.

    Parameters
    ----------
    diff : shape (nf, nloc, nnei, 3), float; Å, from :func:`pair_displacements`.
    nlist : shape (nf, nloc, nnei), int; -1 for padding.
    rcut, rcut_smth : cut-off radii; Å.
    protection : ``env_protection`` added to the distance in the denominator; Å.
    """
    xp = array_namespace(diff, nlist)
    realf = xp.astype(nlist >= 0, diff.dtype)
    # padding slots get a dummy distance of 1 so that no division or sqrt sees 0
    r = xp.sqrt(xp.sum(diff * diff, axis=-1) + (1.0 - realf))
    w, dw = switch(r, rcut_smth, rcut)
    denom = r + protection
    s = w / denom * realf
    ds_dr = (dw / denom - w / denom**2) * realf
    return RadialEnv(s=s, ds_dr=ds_dr, diff=diff, r=r, sw=w * realf)


def normalize_env(s: Array, atype_loc: Array, davg: Array, dstd: Array) -> tuple[Array, Array]:
    r"""Normalise :math:`s` by the per-centre-type statistics.

    Parameters
    ----------
    s : shape (nf, nloc, nnei)
    atype_loc : shape (nf, nloc), int, values in ``[0, ntypes)``
    davg, dstd : shape (ntypes, nnei, 1)

    Returns
    -------
    s_hat : shape (nf, nloc, nnei)
    inv_std : shape (nf, nloc, nnei); :math:`1/\sigma`, the derivative of ``s_hat``.
    """
    xp = array_namespace(s, atype_loc, davg, dstd)
    nf, nloc, nnei = s.shape
    flat_type = xp.reshape(atype_loc, (-1,))
    mean = xp.reshape(xp.take(davg[..., 0], flat_type, axis=0), (nf, nloc, nnei))
    std = xp.reshape(xp.take(dstd[..., 0], flat_type, axis=0), (nf, nloc, nnei))
    return (s - mean) / std, 1.0 / std
