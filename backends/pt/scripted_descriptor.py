"""The se_e2_r descriptor in the TorchScript program of a ``.pth`` file (:mod:`backends.pt.scripted`).

:class:`ScriptDescriptor` ports dpmodel's ``DescrptSeR.forward_pairs`` (``type_one_side``): the
smooth radial environment, its per-type normalisation and type-pair exclusions, and per
neighbour type either the embedding net summed over slots (:class:`ScriptSlotSum`) or its
table (:class:`backends.pt.scripted_table.ScriptTable`).
"""

from typing import List, Tuple

import numpy as np
import torch

from backends.pt.scripted_net import ScriptNet, tensor_of
from backends.pt.scripted_table import ScriptTable
from dpmodel.descriptor import RES_RESCALE
from dpmodel.pair_exclusion import pair_keep_table
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
        # the same modules again when compressed (stored once), for the table-only methods
        self.tables = torch.nn.ModuleList([e for e in self.embeddings if isinstance(e, ScriptTable)])
        self.compressed = len(self.tables) == len(self.embeddings)
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
        s_hat = self.normalized(diff, atype, ntype, real, widths)
        total = torch.zeros(0, dtype=s_hat.dtype, device=s_hat.device)
        start = 0
        for tj, embed in enumerate(self.embeddings):
            value = self.with_padding_tail(embed(s_hat[:, :, start:start + widths[tj], None]), tj, widths, atype)
            start += widths[tj]
            total = value if tj == 0 else total + value
        return (total * self.scale).to(torch.float64)

    def normalized(self, diff: torch.Tensor, atype: torch.Tensor, ntype: torch.Tensor, real: torch.Tensor,
                   widths: List[int]) -> torch.Tensor:
        r"""Normalised environment :math:`\hat s` (nf, nloc, sum(widths)) in the descriptor dtype (arguments of :meth:`forward`)."""
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
        return s_hat

    def with_padding_tail(self, value: torch.Tensor, tj: int, widths: List[int], atype: torch.Tensor) -> torch.Tensor:
        """``value`` (nf, nloc, ng), the embedding summed over the kept slots of neighbour type ``tj``, plus
        the summed embedding of the padding slots a trimmed list dropped (if any)."""
        if widths[tj] == self.sections[tj + 1] - self.sections[tj]:
            return value
        per_type = self.padding_tails[self.sections[tj] + tj + widths[tj]]  # (ntypes, ng)
        return value + torch.index_select(per_type, 0, atype.reshape(-1)).reshape(atype.shape[0], atype.shape[1], -1)

    def table_sums(self, s_hat: torch.Tensor, widths: List[int],
                   atype: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor]]:
        """A compressed model's descriptor (nf, nloc, ng), float64, from :meth:`normalized` (not differentiated),
        and per neighbour type the table rows and knot offsets of its slots
        (:meth:`ScriptTable.terms_and_offsets`), which :meth:`table_slot_grads` reads."""
        nf, nloc = atype.shape[0], atype.shape[1]
        total = torch.zeros(0, dtype=s_hat.dtype, device=s_hat.device)
        indices: List[torch.Tensor] = []
        offsets: List[torch.Tensor] = []
        start = 0
        for tj, table in enumerate(self.tables):
            index, weight, offset = table.terms_and_offsets(s_hat[:, :, start:start + widths[tj], None])
            start += widths[tj]
            value = self.with_padding_tail(table.row_sums(index, weight).reshape(nf, nloc, -1), tj, widths, atype)
            total = value if tj == 0 else total + value
            indices.append(index)
            offsets.append(offset)
        return (total * self.scale).to(torch.float64), indices, offsets

    def table_slot_grads(self, grad: torch.Tensor, indices: List[torch.Tensor],
                         offsets: List[torch.Tensor]) -> torch.Tensor:
        """Gradient (nf, nloc, sum(widths)) with respect to :meth:`normalized` of the descriptor of :meth:`table_sums`,
        from the descriptor's gradient ``grad`` (nf, nloc, ng)."""
        nf, nloc = grad.shape[0], grad.shape[1]
        rows = (grad * self.scale).reshape(nf * nloc, grad.shape[2])
        parts: List[torch.Tensor] = []
        for tj, table in enumerate(self.tables):
            parts.append(table.slot_grads(rows, indices[tj], offsets[tj]).reshape(nf, nloc, -1))
        return torch.cat(parts, dim=2)

    def kept_slots(self, widths: List[int], device: torch.device) -> torch.Tensor:
        """Slot indices of the full list kept by a trimmed one (the first ``widths[t]`` per block)."""
        parts = [torch.arange(self.sections[t], self.sections[t] + widths[t], dtype=torch.int64, device=device)
                 for t in range(self.ntypes)]
        return torch.cat(parts)
