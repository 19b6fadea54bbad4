"""The TorchScript program inside a ``.pth`` file.

TorchScript cannot compile dpmodel's array-API code, so this module, with
:mod:`backends.pt.scripted_neighbor` (ghost atoms and neighbour list) and
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

from backends.pt.scripted_net import ScriptNet, tensor_of
from backends.pt.scripted_neighbor import ScriptNeighborList, neighbor_types, take_rows
from backends.pt.scripted_table import ScriptTable
from dpmodel.descriptor import RES_RESCALE
from dpmodel.pair_exclusion import pair_keep_table
from dpmodel.precision import numpy_dtype
from dpmodel.table import TabulatedEmbedding

class ScriptSlotSum(torch.nn.Module):
    """An embedding net summed over neighbour slots: (nf, nloc, nsel, 1) -> (nf, nloc, ng).

    The net runs features first, on (features, slots) blocks (:class:`ScriptLayer`). The
    skip term of the last layer is linear in its input, so it is added once to the sum
    over slots instead of to every slot (one (ng, slots) pass less each way).
    """

    def __init__(self, net) -> None:
        super().__init__()
        layers = ScriptNet(net, features_first=True).layers
        self.body = torch.nn.ModuleList([layers[i] for i in range(len(layers) - 1)])
        self.head = layers[len(layers) - 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nf, nloc, width = x.shape[0], x.shape[1], x.shape[2]
        rows = nf * nloc
        # slots ordered (slot, row): the sums over slots reduce a middle axis, so their broadcast
        # gradients keep the contiguous layout (a last axis of stride 0 made the backward copy)
        h = x.reshape(rows, width).t().reshape(1, width * rows)
        for layer in self.body:
            h = layer(h)
        z = self.head.linear(h)
        total = torch.sum(self.head.activate(z.reshape(z.shape[0], width, rows)), dim=1)
        total = self.head.add_skip(total, torch.sum(h.reshape(h.shape[0], width, rows), dim=1))  # (ng, rows)
        return total.t().reshape(nf, nloc, total.shape[0])


def _embedding(net, table: TabulatedEmbedding | None) -> torch.nn.Module:
    """What embeds one neighbour type, as dpmodel ``DescrptSeR.embedding``: its table if any, else the net.

    Both return the sum over the type's slots, (nf, nloc, ng).
    """
    return ScriptSlotSum(net) if table is None else ScriptTable(table)


class ScriptDescriptor(torch.nn.Module):
    """dpmodel ``DescrptSeR.forward_pairs`` (``type_one_side``) for TorchScript; tables where compressed."""

    sections: List[int]

    def __init__(self, desc) -> None:
        super().__init__()
        self.rcut, self.rcut_smth, self.protection = desc.rcut, desc.rcut_smth, desc.env_protection
        self.ntypes, self.nnei = desc.ntypes, desc.nnei
        self.sections = [int(s) for s in np.cumsum([0, *desc.sel])]
        self.scale = RES_RESCALE / desc.nnei
        self.register_buffer("davg", tensor_of(desc.davg))
        self.register_buffer("dstd", tensor_of(desc.dstd))
        pairs = desc.exclude_types if desc.type_one_side else []
        self.register_buffer("exclude", torch.from_numpy(pair_keep_table(desc.ntypes, pairs, desc.davg.dtype)))
        self.has_exclusions = len(pairs) > 0
        tables = desc.tables or [None] * len(desc.embeddings.networks)
        keys = [(t,) for t in range(desc.ntypes)]
        self.embeddings = torch.nn.ModuleList([_embedding(desc.embeddings[key], tables[desc.embeddings.flat_index(key)])
                                               for key in keys])
        self.register_buffer("padding_tails", self.tabulate_padding())

    def tabulate_padding(self) -> torch.Tensor:
        """Embedding of the padding slots a trimmed list drops, summed, for every trimmed width.

        A padding slot has ``s = 0``, so :math:`\\hat s = -\\mathrm{davg}/\\mathrm{dstd}` of its centre type
        and slot: a constant of the model. Row ``sections[t] + t + w`` holds, for neighbour type
        ``t``, the sum of the embedding over slots ``w .. sel[t] - 1`` of its block for each centre
        type, (ntypes, ng), evaluated here once by the program's own modules (zero for ``w = sel[t]``).
        """
        rows: List[torch.Tensor] = []
        with torch.no_grad():
            for t, embed in enumerate(self.embeddings):
                first, stop = self.sections[t], self.sections[t + 1]
                padding = -self.davg[:, first:stop, 0] / self.dstd[:, first:stop, 0]  # (ntypes, sel[t])
                rows.extend(embed(padding[None, :, w:, None])[0] for w in range(stop - first + 1))
        return torch.stack(rows)  # (sum(sel) + ntypes, ntypes, ng)

    def forward(self, diff: torch.Tensor, atype: torch.Tensor, ntype: torch.Tensor, real: torch.Tensor,
                widths: List[int]) -> torch.Tensor:
        """Descriptor (nf, nloc, ng), float64, of pair displacements ``diff`` (nf, nloc, sum(widths), 3).

        ``atype`` (nf, nloc) centre types, ``ntype`` (nf, nloc, sum(widths)) neighbour types with
        ``ntypes`` in padding slots (read only with type-pair exclusions), ``real``
        (nf, nloc, sum(widths)) true for real neighbours.
        The list holds the first ``widths[t]`` slots of each type block (dpmodel's
        ``trim_neighbor_list``); the embedding of the dropped padding slots is added back.
        """
        nf, nloc, nkept = atype.shape[0], atype.shape[1], diff.shape[2]
        diff = diff.to(self.davg.dtype)
        realf = real.to(diff.dtype)
        r = torch.sqrt(torch.sum(diff * diff, dim=-1) + (1.0 - realf))
        u = (r - self.rcut_smth) / (self.rcut - self.rcut_smth)
        inside = (u > 0.0) & (u < 1.0)
        uc = torch.where(inside, u, torch.zeros_like(u))
        poly = 1.0 + uc**3 * (-6.0 * uc**2 + 15.0 * uc - 10.0)
        w = torch.where(u <= 0.0, torch.ones_like(r), torch.where(u >= 1.0, torch.zeros_like(r), poly))
        s = w / (r + self.protection) * realf
        slots = self.kept_slots(widths, diff.device)
        davg = torch.index_select(self.davg[:, :, 0], 1, slots)
        dstd = torch.index_select(self.dstd[:, :, 0], 1, slots)
        flat = atype.reshape(-1)
        mean = torch.index_select(davg, 0, flat).reshape(nf, nloc, nkept)
        std = torch.index_select(dstd, 0, flat).reshape(nf, nloc, nkept)
        s_hat = (s - mean) / std
        if self.has_exclusions:
            pair = atype[:, :, None] * (self.ntypes + 1) + ntype
            s_hat = s_hat * torch.index_select(self.exclude, 0, pair.reshape(-1)).reshape(nf, nloc, nkept)
        total = torch.zeros(0, dtype=s_hat.dtype, device=s_hat.device)
        start = 0
        for tj, embed in enumerate(self.embeddings):
            value = embed(s_hat[:, :, start:start + widths[tj], None])
            start += widths[tj]
            if widths[tj] < self.sections[tj + 1] - self.sections[tj]:  # the dropped padding slots (mask 1)
                per_type = self.padding_tails[self.sections[tj] + tj + widths[tj]]  # (ntypes, ng)
                value = value + torch.index_select(per_type, 0, flat).reshape(nf, nloc, -1)
            total = value if tj == 0 else total + value
        return (total * self.scale).to(torch.float64)

    def kept_slots(self, widths: List[int], device: torch.device) -> torch.Tensor:
        """Slot indices of the full list kept by a trimmed one (the first ``widths[t]`` per block)."""
        parts = [torch.arange(self.sections[t], self.sections[t] + widths[t], dtype=torch.int64, device=device)
                 for t in range(self.ntypes)]
        return torch.cat(parts)


class ScriptFitting(torch.nn.Module):
    """dpmodel ``EnergyFitting.call`` for TorchScript."""

    exclude_types: List[int]

    def __init__(self, fitting) -> None:
        super().__init__()
        dtype = numpy_dtype(fitting.precision)
        self.ntypes, self.dim_descrpt = fitting.ntypes, fitting.dim_descrpt
        self.numb_fparam, self.numb_aparam = fitting.numb_fparam, fitting.numb_aparam
        self.use_aparam = fitting.numb_aparam > 0 and not fitting.use_aparam_as_mask
        self.mixed_types = fitting.mixed_types
        self.exclude_types = [int(t) for t in fitting.exclude_types]
        self.has_default_fparam = fitting.default_fparam is not None
        empty = np.zeros(0, dtype)
        self.register_buffer("dtype_probe", torch.from_numpy(empty))
        self.register_buffer("fparam_avg", tensor_of(fitting.fparam_avg if fitting.numb_fparam else empty))
        self.register_buffer("fparam_inv_std", tensor_of(fitting.fparam_inv_std if fitting.numb_fparam else empty))
        self.register_buffer("aparam_avg", tensor_of(fitting.aparam_avg if fitting.numb_aparam else empty))
        self.register_buffer("aparam_inv_std", tensor_of(fitting.aparam_inv_std if fitting.numb_aparam else empty))
        default = np.zeros(fitting.numb_fparam) if fitting.default_fparam is None else fitting.default_fparam
        self.register_buffer("default_fparam", torch.from_numpy(np.asarray(default, dtype=np.float64).reshape(-1)))
        self.register_buffer("bias_atom_e", tensor_of(np.asarray(fitting.bias_atom_e, dtype=np.float64)))
        keys = [()] if fitting.mixed_types else [(t,) for t in range(fitting.ntypes)]
        self.nets = torch.nn.ModuleList([ScriptNet(fitting.nets[key]) for key in keys])

    def forward(self, descriptor: torch.Tensor, atype: torch.Tensor, fparam: Optional[torch.Tensor],
                aparam: Optional[torch.Tensor]) -> torch.Tensor:
        """Atomic energies (nf, nloc, 1), float64."""
        nf, nloc = atype.shape[0], atype.shape[1]
        dtype = self.dtype_probe.dtype
        parts = [descriptor.to(dtype)]
        if self.numb_fparam > 0:
            if fparam is None:
                if not self.has_default_fparam:
                    raise RuntimeError("this model needs fparam of shape (nframes, numb_fparam); none was given")
                fparam = self.default_fparam.to(descriptor.device)[None, :].expand(nf, self.numb_fparam)
            assert fparam is not None
            f = (fparam.reshape(nf, self.numb_fparam).to(dtype) - self.fparam_avg) * self.fparam_inv_std
            parts.append(f[:, None, :].expand(nf, nloc, self.numb_fparam))
        if self.use_aparam:
            if aparam is None:
                raise RuntimeError("this model needs aparam of shape (nframes, natoms, numb_aparam); none was given")
            a = aparam.reshape(nf, nloc, self.numb_aparam).to(dtype)
            parts.append((a - self.aparam_avg) * self.aparam_inv_std)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        if self.mixed_types:
            energy = self.nets[0](x)
        else:  # each type's net on its own atoms only
            flat_type, rows = atype.reshape(-1), x.reshape(nf * nloc, -1)
            energy = torch.zeros([nf * nloc, 1], dtype=dtype, device=x.device)
            for t, net in enumerate(self.nets):
                index = torch.nonzero(flat_type == t)[:, 0]
                energy = energy.index_copy(0, index, net(torch.index_select(rows, 0, index)))
            energy = energy.reshape(nf, nloc, 1)
        bias = torch.index_select(self.bias_atom_e, 0, atype.reshape(-1)).reshape(nf, nloc, 1)
        energy = energy.to(torch.float64) + bias
        keep = torch.ones_like(atype, dtype=torch.bool)
        for t in self.exclude_types:
            keep = keep & (atype != t)
        return energy * keep.to(torch.float64)[:, :, None]


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
