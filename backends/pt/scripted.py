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


#: neighbour slots (frames x local atoms x kept slots) from which a compressed program
#: evaluates two halves of its atoms on two threads
SPLIT_MIN_SLOTS = 4096


class ScriptModel(torch.nn.Module):
    """dpmodel ``EnergyModel`` (all-pairs neighbour list, autograd forces) for TorchScript.

    A compressed model (``split_atoms``) with at least :data:`SPLIT_MIN_SLOTS` neighbour slots
    evaluates two halves of its atoms, energies and autograd pair gradients, on two threads
    (``torch.jit.fork``; autograd runs a CPU backward pass on the thread that asks for it). Its
    table sums and small element-wise operations otherwise keep one core busy: a
    compressed 192-atom water frame with ``[25, 50, 100]`` nets took the same time on one
    intra-op thread as on two (33.5 and 31.7 ms), and 10 to 16 % less split. The split
    gained from 5760 slots (27 % at 9600) and lost below 2500 (10 % at 2496). Plain models
    are not split: their matrix products already use both cores, and the split slowed one
    frame of the ``[5, 10, 20]`` water model by 10 %.
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
        self.split_atoms, self.split_min_slots = bool(desc.tables), SPLIT_MIN_SLOTS
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
        if self.split_atoms and nloc > 1 and nf * nloc * nnei >= self.split_min_slots:
            atom_energy, pair_grad = self.halves_energy_and_pair_grad(diff, atype, ntype, real, widths, fparam,
                                                                      aparam, keep)
        else:
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
        nf, nloc = atype.shape[0], atype.shape[1]
        diff = diff.detach().requires_grad_(True)
        descriptor = self.descriptor(diff, atype, ntype, real, widths)
        atom_energy = self.fitting(descriptor, atype, fparam, aparam)
        bias = torch.index_select(self.out_bias, 0, atype.reshape(-1)).reshape(nf, nloc, 1)
        atom_energy = (atom_energy + bias) * keep
        grads = torch.autograd.grad([torch.sum(atom_energy)], [diff])
        pair_grad = grads[0]
        assert pair_grad is not None
        return atom_energy.detach(), pair_grad

    def halves_energy_and_pair_grad(self, diff: torch.Tensor, atype: torch.Tensor, ntype: torch.Tensor,
                                    real: torch.Tensor, widths: List[int], fparam: Optional[torch.Tensor],
                                    aparam: Optional[torch.Tensor], keep: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`energy_and_pair_grad` of the second half of the centres on a forked thread, of the first here."""
        nf, nloc = atype.shape[0], atype.shape[1]
        half = nloc // 2
        first_aparam: Optional[torch.Tensor] = None
        second_aparam: Optional[torch.Tensor] = None
        if aparam is not None:
            per_atom = aparam.reshape(nf, nloc, -1)
            first_aparam, second_aparam = per_atom[:, :half], per_atom[:, half:]
        second = torch.jit.fork(self.energy_and_pair_grad, diff[:, half:], atype[:, half:], ntype[:, half:],
                                real[:, half:], widths, fparam, second_aparam, keep[:, half:])
        first_energy, first_grad = self.energy_and_pair_grad(diff[:, :half], atype[:, :half], ntype[:, :half],
                                                             real[:, :half], widths, fparam, first_aparam,
                                                             keep[:, :half])
        second_energy, second_grad = torch.jit.wait(second)
        return torch.cat([first_energy, second_energy], 1), torch.cat([first_grad, second_grad], 1)


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
