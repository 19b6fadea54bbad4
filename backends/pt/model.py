"""Energy, forces and virials of a torch :class:`~backends.pt.modules.EnergyModel` by autograd.

The energy is dpmodel's ``atomic_energy_from_pairs`` of the pair displacements
``diff`` (of the neighbour list trimmed of its all-padding tails); one ``torch.autograd.grad`` gives :math:`\\partial E/\\partial\\mathbf d_{ij}` and
:func:`dpmodel.forces.forces_and_virials` folds it into forces, virial and atomic virial.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import torch
from torch.autograd.function import once_differentiable

from backends.pt.bag_sum import FORK_MIN_BAGS, bag_sum, csr_row_sum, row_dots
from dpmodel import xp as dpxp
from dpmodel.forces import forces_and_virials
from dpmodel.neighbor import neighbor_data


def segment_sum(values: torch.Tensor, segment: torch.Tensor, nseg: int) -> torch.Tensor:
    """Native scatter-add (``index_add``, differentiable) for :func:`dpmodel.xp.segment_sum`."""
    out = torch.zeros((nseg, *values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add(0, segment, values)


class _TableRowSum(torch.autograd.Function):
    """:func:`backends.pt.bag_sum.csr_row_sum`, with :func:`~backends.pt.bag_sum.row_dots` as its gradient in
    the weights (first derivatives only)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(table, index)
        return csr_row_sum(index, table, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        table, index = ctx.saved_tensors
        return None, None, row_dots(grad, table, index)


def weighted_row_sum(table: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Native sparse product for :func:`dpmodel.xp.weighted_row_sum`: a CSR product, differentiable once in
    ``weight`` (:class:`_TableRowSum`); ``embedding_bag`` (:func:`backends.pt.bag_sum.bag_sum`) when the table
    itself requires grad."""
    if table.requires_grad:
        return bag_sum(index, table, weight, FORK_MIN_BAGS)
    return _TableRowSum.apply(table, index, weight)


dpxp.register_segment_sum(array_api_compat.is_torch_namespace, segment_sum)
dpxp.register_weighted_row_sum(array_api_compat.is_torch_namespace, weighted_row_sum)


def evaluate_lower(model: Any, coord_ext: torch.Tensor, atype_ext: torch.Tensor, nlist: torch.Tensor,
                   mapping: torch.Tensor, fparam: torch.Tensor | None = None, aparam: torch.Tensor | None = None,
                   do_atomic_virial: bool = False, create_graph: bool = False) -> dict[str, torch.Tensor]:
    """Outputs of dpmodel ``EnergyModel.call_lower``, forces by autograd.

    Parameters
    ----------
    model : torch ``EnergyModel``
    coord_ext : shape (nf, nall, 3), float64; Å
    atype_ext : shape (nf, nall), int64
    nlist : shape (nf, nloc, nnei), int64; type-split neighbour list
    mapping : shape (nf, nall), int64
    create_graph : keep the graph of the forces (training on forces/virials)

    Returns
    -------
    dict of ``energy`` (nf, 1), ``atom_energy`` (nf, nloc, 1), ``force`` (nf, nloc, 3),
    ``virial`` (nf, 9), ``mask`` (nf, nloc) and, with ``do_atomic_virial``, ``atom_virial``
    (nf, nloc, 9); float64, detached unless ``create_graph``.
    """
    diff, nlist, widths = model.pairs(coord_ext, atype_ext, nlist)
    with torch.enable_grad():
        diff = diff.detach().requires_grad_(True)
        atom_energy, mask = model.atomic_energy_from_pairs(diff, atype_ext, nlist, fparam, aparam, widths=widths)
        energy = torch.sum(atom_energy, dim=1)
        (pair_grad,) = torch.autograd.grad(energy.sum(), diff, create_graph=create_graph)
    force, virial, atom_virial = forces_and_virials(pair_grad, diff, nlist, mapping, do_atomic_virial)
    out = {"energy": energy, "atom_energy": atom_energy, "force": force, "virial": virial, "mask": mask}
    if do_atomic_virial:
        out["atom_virial"] = atom_virial
    if not create_graph:
        out = {key: value.detach() for key, value in out.items()}
    return out


def evaluate(model: Any, coord: torch.Tensor, atype: torch.Tensor, box: torch.Tensor | None = None,
             fparam: torch.Tensor | None = None, aparam: torch.Tensor | None = None,
             do_atomic_virial: bool = False, create_graph: bool = False) -> dict[str, torch.Tensor]:
    """Outputs of dpmodel ``EnergyModel.call`` for whole frames, forces by autograd.

    The neighbour list is built on the host by :func:`dpmodel.neighbor.neighbor_data`
    (integer bookkeeping, O(N) cell list for large systems), then moved to ``coord.device``.

    Parameters
    ----------
    coord : shape (nf, nloc, 3) or (nf, nloc*3); Å
    atype : shape (nf, nloc), int; -1 marks a virtual atom
    box : shape (nf, 9) or None; Å
    """
    nf, nloc = atype.shape
    device = coord.device
    coord = torch.reshape(coord.detach().to(torch.float64), (nf, nloc, 3)).cpu().numpy()
    box = None if box is None else torch.reshape(box.detach().to(torch.float64), (nf, 9)).cpu().numpy()
    ext = neighbor_data(coord, atype.detach().cpu().numpy(), box, model.get_rcut(), model.get_sel())
    coord_ext, atype_ext, mapping, nlist = (torch.as_tensor(np.array(a), device=device) for a in ext)
    return evaluate_lower(model, coord_ext, atype_ext, nlist, mapping, fparam, aparam, do_atomic_virial, create_graph)
