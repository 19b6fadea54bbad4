"""The TorchScript program inside a ``.pth`` file.

TorchScript cannot compile dpmodel's array-API code, so this module (the model: neighbour
list, descriptor, fitting, autograd forces), with
:mod:`backends.pt.scripted_neighbor` (ghost atoms and neighbour list),
:mod:`backends.pt.scripted_descriptor` (the se_e2_r descriptor),
:mod:`backends.pt.scripted_fitting` (the energy fitting),
:mod:`backends.pt.scripted_net` (dense layers and nets) and
:mod:`backends.pt.scripted_table` (compressed embedding nets), is the one native port in
the backend, limited to what a deployed ``.pth`` needs: the forward pass of the energy
model and its neighbour list. Every constant (cut-offs, ``sel``, statistics,
weights, exclusion tables, skip-connection rules, scale factors) is read from a dpmodel
object at build time; the program is trusted only through ``tests/pt``, which compare
it with dpmodel on varied systems and options. Forces come from ``torch.autograd.grad``.

The scripted module follows DeePMD-kit's ``.pth`` interface::

    forward(coord, atype, box=None, fparam=None, aparam=None, do_atomic_virial=False)
        -> {"energy", "atom_energy", "force", "virial", "mask"[, "atom_virial"]}
    forward_lower(extended_coord, extended_atype, nlist, mapping, fparam, aparam, do_atomic_virial)

plus ``get_rcut``, ``get_type_map``, ``get_sel``, ``get_dim_fparam``, ``get_dim_aparam`` and
``get_model_def_script``. Like DeePMD-kit's, it must be called with gradients enabled.
A compressed model (descriptor ``@version`` 3) keeps its tables in the archive's
``model.json``, and this program evaluates them as dpmodel does, in
:mod:`backends.pt.scripted_table` (value and linear continuation; the ``check_frequency``
overflow warnings are not ported). Embedding nets without a table run as nets.
"""


import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from backends.pt.scripted_descriptor import ScriptDescriptor
from backends.pt.scripted_fitting import ScriptFitting
from backends.pt.scripted_net import tensor_of
from backends.pt.scripted_neighbor import ScriptNeighborList, neighbor_types, take_rows
from dpmodel.pair_exclusion import pair_keep_table


class ScriptModel(torch.nn.Module):
    """dpmodel ``EnergyModel`` (all-pairs neighbour list, autograd forces) for TorchScript.

    A compressed model sums its tables outside autograd (:meth:`table_energy_and_pair_grad`):
    a sparse (CSR) product forward and the dot products of table rows backward, both on every
    intra-op thread, where ``embedding_bag`` of float64 tables runs on one thread and takes
    about 40 ns per weighted row. A compressed 192-atom water frame with ``[25, 50, 100]``
    nets took 21.0 instead of 23.9 ms (the plain one 39.4 ms), paired in one process, and
    with the slopes formed directly (:meth:`ScriptTable.slot_grads`) 12.0 to 13.0 ms where
    the plain one took 27 to 28 ms in a quieter spell.
    """

    sel: List[int]
    type_map: List[str]
    atom_exclude_types: List[int]

    def __init__(self, model, model_def_script: str = "") -> None:
        super().__init__()
        desc = model.descriptor
        self.rcut, self.sel, self.ntypes = desc.rcut, list(desc.sel), desc.ntypes
        self.type_map = list(model.type_map)
        self.atom_exclude_types = [int(t) for t in model.atom_exclude_types]
        self.dim_fparam, self.dim_aparam = model.fitting.numb_fparam, model.fitting.numb_aparam
        self.model_def_script = model_def_script
        self.register_buffer("pair_keep", torch.from_numpy(pair_keep_table(desc.ntypes, model.pair_exclude_types, np.bool_)))
        self.has_pair_exclusions = len(model.pair_exclude_types) > 0
        self.register_buffer("out_bias", tensor_of(np.asarray(model.out_bias[0, :, 0], dtype=np.float64)))
        self.neighbors = ScriptNeighborList(desc.rcut, desc.sel, desc.ntypes)
        self.descriptor = ScriptDescriptor(desc)
        self.fitting = ScriptFitting(model.fitting)

    @torch.jit.export
    def get_rcut(self) -> float:
        return self.rcut

    @torch.jit.export
    def get_type_map(self) -> List[str]:
        return self.type_map

    @torch.jit.export
    def get_sel(self) -> List[int]:
        return self.sel

    @torch.jit.export
    def get_dim_fparam(self) -> int:
        return self.dim_fparam

    @torch.jit.export
    def get_dim_aparam(self) -> int:
        return self.dim_aparam

    @torch.jit.export
    def get_model_def_script(self) -> str:
        return self.model_def_script

    def forward(self, coord: torch.Tensor, atype: torch.Tensor, box: Optional[torch.Tensor] = None,
                fparam: Optional[torch.Tensor] = None, aparam: Optional[torch.Tensor] = None,
                do_atomic_virial: bool = False) -> Dict[str, torch.Tensor]:
        """Energy (nf, 1), atom_energy (nf, nloc, 1), force (nf, nloc, 3), virial (nf, 9), mask
        and with ``do_atomic_virial`` atom_virial (nf, nloc, 9) of ``coord`` (nf, nloc, 3) Å,
        ``atype`` (nf, nloc) and ``box`` (nf, 9) Å or None."""
        nf, nloc = atype.shape[0], atype.shape[1]
        coord = coord.to(torch.float64).reshape(nf, nloc, 3)
        coord_ext, atype_ext, mapping, nlist = self.neighbors(coord, atype, box)
        return self.forward_lower(coord_ext, atype_ext, nlist, mapping, fparam, aparam, do_atomic_virial)

    @torch.jit.export
    def forward_lower(self, extended_coord: torch.Tensor, extended_atype: torch.Tensor, nlist: torch.Tensor,
                      mapping: torch.Tensor, fparam: Optional[torch.Tensor] = None,
                      aparam: Optional[torch.Tensor] = None, do_atomic_virial: bool = False) -> Dict[str, torch.Tensor]:
        """Outputs of :meth:`forward` (local atoms) from extended atoms, a type-split nlist and mapping."""
        if not torch.is_grad_enabled():
            raise RuntimeError("forces need autograd: call this model with gradients enabled (not under torch.no_grad())")
        nf, nloc, nnei = nlist.shape[0], nlist.shape[1], nlist.shape[2]
        coord_ext = extended_coord.to(torch.float64).reshape(nf, -1, 3)
        atype_loc = extended_atype[:, :nloc]
        safe_ext = torch.where(extended_atype >= 0, extended_atype, torch.zeros_like(extended_atype))
        atype = safe_ext[:, :nloc]
        if self.has_pair_exclusions:  # model pair_exclude_types on the original types (a virtual atom is never excluded)
            ctype = atype_loc[:, :, None].expand(nf, nloc, nnei)
            otype = neighbor_types(extended_atype, nlist, self.ntypes)
            index = torch.where((ctype >= 0) & (otype >= 0), ctype * (self.ntypes + 1) + otype,
                                torch.full_like(ctype, self.ntypes * (self.ntypes + 2)))
            keep_pair = torch.index_select(self.pair_keep, 0, index.reshape(-1)).reshape(nf, nloc, nnei)
            nlist = torch.where(keep_pair, nlist, torch.full_like(nlist, -1))
        widths = trimmed_widths(nlist, self.sel)
        if sum(widths) < nnei:  # drop the trailing slots that are padding in every row
            nlist = torch.index_select(nlist, 2, self.descriptor.kept_slots(widths, nlist.device))
            nnei = nlist.shape[2]
        # neighbour types matter only to the descriptor's type-pair exclusions
        ntype = neighbor_types(safe_ext, nlist, self.ntypes) if self.descriptor.has_exclusions else nlist
        real = nlist >= 0
        safe = torch.where(real, nlist, torch.zeros_like(nlist))
        neighbours = take_rows(coord_ext, safe.reshape(nf, nloc * nnei)).reshape(nf, nloc, nnei, 3)
        diff = (neighbours - coord_ext[:, :nloc, None, :]) * real.to(torch.float64)[:, :, :, None]
        mask = atype_loc >= 0
        for t in self.atom_exclude_types:
            mask = mask & (atype_loc != t)
        keep = mask.to(torch.float64)[:, :, None]
        atom_energy, pair_grad = self.energy_and_pair_grad(diff, atype, ntype, real, widths, fparam, aparam, keep)
        energy = torch.sum(atom_energy, dim=1)
        owner = take_rows(mapping.to(torch.int64)[:, :, None], safe.reshape(nf, nloc * nnei)).reshape(-1)
        segment = owner + (torch.arange(nf, dtype=torch.int64, device=owner.device) * nloc).repeat_interleave(nloc * nnei)
        received = torch.zeros([nf * nloc, 3], dtype=pair_grad.dtype, device=pair_grad.device)
        received = received.index_add(0, segment, pair_grad.reshape(-1, 3))
        force = torch.sum(pair_grad, dim=2) - received.reshape(nf, nloc, 3)
        pairs_g, pairs_d = pair_grad.reshape(nf, nloc * nnei, 3), diff.detach().reshape(nf, nloc * nnei, 3)
        virial = -torch.bmm(pairs_g.transpose(1, 2), pairs_d).reshape(nf, 9)
        out = {"energy": energy, "atom_energy": atom_energy, "force": force,
               "virial": virial, "mask": mask.to(torch.int32)}
        if do_atomic_virial:
            pair_virial = -(pairs_g[:, :, :, None] * pairs_d[:, :, None, :]).reshape(-1, 9)
            atom_virial = torch.zeros([nf * nloc, 9], dtype=pair_grad.dtype, device=pair_grad.device)
            out["atom_virial"] = atom_virial.index_add(0, segment, pair_virial).reshape(nf, nloc, 9)
        return out


    def energy_and_pair_grad(self, diff: torch.Tensor, atype: torch.Tensor, ntype: torch.Tensor, real: torch.Tensor,
                             widths: List[int], fparam: Optional[torch.Tensor], aparam: Optional[torch.Tensor],
                             keep: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""Atomic energies (nf, n, 1) of ``n`` centres from their pair displacements ``diff`` (nf, n, nnei, 3),
        and :math:`\partial E/\partial\mathbf d_{ij}` (nf, n, nnei, 3); ``keep`` (nf, n, 1) is 1 for counted atoms."""
        diff = diff.detach().requires_grad_(True)
        if self.descriptor.compressed:
            return self.table_energy_and_pair_grad(diff, atype, ntype, real, widths, fparam, aparam, keep)
        descriptor = self.descriptor(diff, atype, ntype, real, widths)
        atom_energy = self.atom_energy(descriptor, atype, fparam, aparam, keep)
        grads = torch.autograd.grad([torch.sum(atom_energy)], [diff])
        pair_grad = grads[0]
        assert pair_grad is not None
        return atom_energy.detach(), pair_grad

    def atom_energy(self, descriptor: torch.Tensor, atype: torch.Tensor, fparam: Optional[torch.Tensor],
                    aparam: Optional[torch.Tensor], keep: torch.Tensor) -> torch.Tensor:
        """Atomic energies (nf, n, 1) of the descriptor (nf, n, ng): fitting, output bias, ``keep``."""
        nf, nloc = atype.shape[0], atype.shape[1]
        bias = torch.index_select(self.out_bias, 0, atype.reshape(-1)).reshape(nf, nloc, 1)
        return (self.fitting(descriptor, atype, fparam, aparam) + bias) * keep

    def table_energy_and_pair_grad(self, diff: torch.Tensor, atype: torch.Tensor, ntype: torch.Tensor,
                                   real: torch.Tensor, widths: List[int], fparam: Optional[torch.Tensor],
                                   aparam: Optional[torch.Tensor], keep: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`energy_and_pair_grad` of a compressed model, whose table sums autograd does not see.

        Autograd runs twice over short pieces: through the fitting for the descriptor's gradient,
        which the tables turn into the gradient of every slot's normalised input (dot products of
        table rows and the polynomials' slopes), and from those inputs back to ``diff``.
        """
        s_hat = self.descriptor.normalized(diff, atype, ntype, real, widths)
        descriptor, indices, offsets = self.descriptor.table_sums(s_hat.detach(), widths, atype)
        descriptor = descriptor.requires_grad_(True)
        atom_energy = self.atom_energy(descriptor, atype, fparam, aparam, keep)
        descriptor_grad = torch.autograd.grad([torch.sum(atom_energy)], [descriptor])[0]
        assert descriptor_grad is not None
        slot_grad = self.descriptor.table_slot_grads(descriptor_grad, indices, offsets)
        grads: List[Optional[torch.Tensor]] = [slot_grad.to(s_hat.dtype)]
        pair_grad = torch.autograd.grad([s_hat], [diff], grads, allow_unused=True)[0]
        if pair_grad is None:  # no neighbour slot at all
            pair_grad = torch.zeros_like(diff)
        return atom_energy.detach(), pair_grad


def trimmed_widths(nlist: torch.Tensor, sel: List[int]) -> List[int]:
    """Per type block, one past the last slot that is real in some row (dpmodel ``trim_neighbor_list``)."""
    widths: List[int] = []
    start = 0
    for width in sel:
        real = nlist[:, :, start:start + width] >= 0
        position = torch.arange(1, width + 1, dtype=torch.int64, device=nlist.device)
        widths.append(int(torch.max(real.to(torch.int64) * position).item()) if real.numel() > 0 else 0)
        start += width
    return widths


def script_model(model, model_def_script: str = "") -> torch.jit.ScriptModule:
    """Compile a dpmodel (NumPy) ``EnergyModel`` into the TorchScript program of a ``.pth``.

    ``torch.jit.script`` is deprecated in favour of ``torch.export`` but remains the
    format DeePMD-kit's ``.pth`` files and their C++/LAMMPS consumers load.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=DeprecationWarning)
        return torch.jit.script(ScriptModel(model, model_def_script))
