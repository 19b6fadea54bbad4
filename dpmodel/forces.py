r"""Forces and virials from per-pair energy gradients, without automatic differentiation.

Every coordinate dependence of an ``se_e2_r`` energy goes through the pair
displacements :math:`\mathbf d_{ij} = \mathbf x_n - \mathbf x_i` (:math:`n` = the atom in
slot :math:`j`). Given :math:`\mathbf g_{ij} = \partial E/\partial\mathbf d_{ij}`:

.. math:: \mathbf F_i = \sum_j \mathbf g_{ij} - \sum_{(k,j):\,n=i} \mathbf g_{kj},\qquad
          \Xi_{ab} = -\sum_{ij} g_{ij,a}\, d_{ij,b},

and the atomic virial of DeePMD-kit (origin independent) gives
:math:`-\mathbf g_{ij}\otimes\mathbf d_{ij}` to the neighbour :math:`n`, nothing to the
centre. Ghost contributions are folded onto their local atoms through ``mapping``.
"""

from __future__ import annotations

from dpmodel.xp import Array, array_namespace, device, segment_sum, take_rows


def forces_and_virials(pair_grad: Array, diff: Array, nlist: Array, mapping: Array,
                       atomic_virial: bool = False) -> tuple[Array, Array, Array | None]:
    """Fold pair gradients into local forces, the virial and optionally atomic virials.

    Parameters
    ----------
    pair_grad : shape (nf, nloc, nnei, 3), float64; :math:`\\partial E/\\partial\\mathbf d_{ij}`, eV/Å.
        Zero in padding slots.
    diff : shape (nf, nloc, nnei, 3), float; Å
    nlist : shape (nf, nloc, nnei), int; -1 for padding
    mapping : shape (nf, nall), int; local index of each extended atom
    atomic_virial : also return the per-atom virial

    Returns
    -------
    force : shape (nf, nloc, 3); eV/Å
    virial : shape (nf, 9); eV, row-major :math:`\\Xi_{ab}` at ``3a + b``
    atom_virial : shape (nf, nloc, 9) or None; eV
    """
    xp = array_namespace(pair_grad, nlist, mapping)
    nf, nloc, nnei = nlist.shape
    diff = xp.astype(diff, pair_grad.dtype)
    safe = xp.where(nlist >= 0, nlist, xp.zeros_like(nlist))
    owner = take_rows(xp.astype(mapping, xp.int64), xp.reshape(xp.astype(safe, xp.int64), (nf, nloc * nnei)))
    frame = xp.reshape(xp.arange(nf, dtype=xp.int64, device=device(nlist)) * nloc, (nf, 1))
    segment = xp.reshape(owner + frame, (-1,))
    received = segment_sum(xp.reshape(pair_grad, (nf * nloc * nnei, 3)), segment, nf * nloc)
    force = xp.sum(pair_grad, axis=2) - xp.reshape(received, (nf, nloc, 3))
    pairs_g = xp.reshape(pair_grad, (nf, nloc * nnei, 3))
    pairs_d = xp.reshape(diff, (nf, nloc * nnei, 3))
    virial = -xp.reshape(xp.matmul(xp.matrix_transpose(pairs_g), pairs_d), (nf, 9))  # no (pairs, 9) block
    atom_virial = None
    if atomic_virial:
        pair_virial = -xp.reshape(pairs_g[..., :, None] * pairs_d[..., None, :], (nf * nloc * nnei, 9))
        atom_virial = xp.reshape(segment_sum(pair_virial, segment, nf * nloc), (nf, nloc, 9))
    return force, virial, atom_virial
