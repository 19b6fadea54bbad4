"""The neighbour search of the TorchScript program inside a ``.pth`` file.

:class:`ScriptNeighborList` gives what dpmodel's ``neighbor_data`` gives with the
all-pairs method: wrapped coordinates, ghost atoms of periodic images, the mapping of
every extended atom to its local atom, and the type-split neighbour list (the ``sum(sel)``
nearest atoms within ``rcut``, ``sel[t]`` slots per neighbour type, nearest first, -1
padding; virtual atoms, of type < 0, are nobody's neighbour and have none). Ghosts that
cannot be within ``rcut`` of the cell are left out, one ``torch.cdist`` pass finds the
atoms within ``rcut``, and only those are measured again and sorted; the lists name the
same atoms in the same order as dpmodel's.
"""

from typing import List, Optional, Tuple

import torch

#: relative margin of the first, approximate cut: ``cdist``'s matrix-product distances may differ
#: from the exact ones by about 1e-14 relative (more only far below ``rcut``); the exact cut follows
LOOSE_MARGIN = 1e-6


def take_rows(array: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[f, k] = array[f, index[f, k]]`` for (nf, n, ...) ``array`` and (nf, m) ``index``."""
    nf, n = array.shape[0], array.shape[1]
    tail = array.shape[2:]
    offset = torch.arange(nf, dtype=index.dtype, device=index.device)[:, None] * n
    flat_shape = [nf * n]
    flat_shape.extend(tail)
    out = torch.index_select(array.reshape(flat_shape), 0, (index + offset).reshape(-1))
    shape = [nf, index.shape[1]]
    shape.extend(tail)
    return out.reshape(shape)


def neighbor_types(atype_ext: torch.Tensor, nlist: torch.Tensor, ntypes: int) -> torch.Tensor:
    """Type of the atom in every slot of ``nlist`` (nf, nloc, nnei), ``ntypes`` in padding slots."""
    nf, nloc, nnei = nlist.shape[0], nlist.shape[1], nlist.shape[2]
    real = nlist >= 0
    safe = torch.where(real, nlist, torch.zeros_like(nlist))
    ntype = take_rows(atype_ext[:, :, None], safe.reshape(nf, nloc * nnei)).reshape(nf, nloc, nnei)
    return torch.where(real, ntype, torch.full_like(ntype, ntypes))


class ScriptNeighborList(torch.nn.Module):
    """Extended atoms and type-split neighbour list of local atoms, for TorchScript.

    Attributes
    ----------
    rcut : cut-off radius; Å
    sel : slots per neighbour type; ``nsel = sum(sel)``
    ntypes : number of atom types
    loose_cut : the approximate cut of the ``cdist`` pass, ``rcut (1 + LOOSE_MARGIN)``; Å
    """

    sel: List[int]

    def __init__(self, rcut: float, sel: List[int], ntypes: int) -> None:
        super().__init__()
        self.rcut, self.sel, self.nsel, self.ntypes = float(rcut), [int(s) for s in sel], int(sum(sel)), int(ntypes)
        self.loose_cut = self.rcut * (1.0 + LOOSE_MARGIN)

    def forward(self, coord: torch.Tensor, atype: torch.Tensor,
                box: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(coord_ext (nf, nall, 3) Å, atype_ext (nf, nall), mapping (nf, nall), nlist (nf, nloc, nsel))``
        of ``coord`` (nf, nloc, 3) float64 Å, ``atype`` (nf, nloc) and ``box`` (nf, 9) Å or None (no periodicity)."""
        nf, nloc = atype.shape[0], atype.shape[1]
        if box is None:
            coord_ext, atype_ext = coord, atype
            mapping = torch.arange(nloc, dtype=torch.int64, device=coord.device)[None, :].expand(nf, nloc)
        else:
            cell = box.to(torch.float64).reshape(nf, 3, 3)
            coord_ext, atype_ext, mapping = self.extend(self.wrap(coord, cell), atype, cell)
        return coord_ext, atype_ext, mapping, self.build(coord_ext, atype_ext, nloc)

    def wrap(self, coord: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """``coord`` (nf, nloc, 3) Å moved into the cell (nf, 3, 3): fractional coordinates in [0, 1)."""
        frac = torch.matmul(coord, torch.linalg.inv(cell))
        frac = frac - torch.floor(frac)
        frac = torch.where(frac >= 1.0, frac - 1.0, frac)
        return torch.matmul(frac, cell)

    def extend(self, coord: torch.Tensor, atype: torch.Tensor,
               cell: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ghost atoms as dpmodel ``extend_coord_with_ghosts`` (shift-major, shifts sorted by norm),
        less those farther than ``rcut`` from the cell in every frame.

        A ghost is kept where each fractional coordinate lies within ``rcut / h_k`` of
        [0, 1] (``h_k`` the cell height across face ``k``), which every ghost within ``rcut``
        of a (wrapped) local atom does; the kept ones stay in dpmodel's order, so the
        neighbour lists name the same atoms in the same order.
        """
        nf, nloc = atype.shape[0], atype.shape[1]
        a, b, c = cell[:, 0, :], cell[:, 1, :], cell[:, 2, :]
        volume = torch.abs(torch.sum(a * torch.linalg.cross(b, c), dim=-1))
        areas = torch.stack([torch.linalg.vector_norm(torch.linalg.cross(b, c), dim=-1),
                             torch.linalg.vector_norm(torch.linalg.cross(c, a), dim=-1),
                             torch.linalg.vector_norm(torch.linalg.cross(a, b), dim=-1)], dim=-1)
        nbuff: List[int] = torch.ceil(self.rcut / (volume[:, None] / areas)).to(torch.int64).amax(dim=0).tolist()
        axes = [torch.arange(-n, n + 1, dtype=torch.int64, device=coord.device) for n in nbuff]
        grid = torch.stack(torch.meshgrid(axes, indexing="ij"), dim=-1).reshape(-1, 3)
        order = torch.argsort(torch.sum(grid * grid, dim=-1), stable=True)
        shifts = torch.index_select(grid, 0, order).to(torch.float64)
        ns = shifts.shape[0]
        shift_vec = torch.matmul(shifts, cell)
        coord_ext = (coord[:, None, :, :] + shift_vec[:, :, None, :]).reshape(nf, ns * nloc, 3)
        atype_ext = atype[:, None, :].expand(nf, ns, nloc).reshape(nf, ns * nloc)
        mapping = torch.arange(nloc, dtype=torch.int64, device=coord.device).repeat(ns)[None, :].expand(nf, ns * nloc)
        frac = torch.matmul(coord, torch.linalg.inv(cell))[:, None, :, :] + shifts[None, :, None, :]
        margin = (self.rcut / (volume[:, None] / areas) + 1e-6)[:, None, None, :]
        near = torch.all((frac >= -margin) & (frac <= 1.0 + margin), dim=-1).reshape(nf, ns * nloc)
        near = torch.any(near, dim=0)
        near[:nloc] = True  # the local atoms (shift 0) whatever their coordinates
        kept = torch.nonzero(near)[:, 0]
        return (torch.index_select(coord_ext, 1, kept), torch.index_select(atype_ext, 1, kept),
                torch.index_select(mapping, 1, kept))

    def build(self, coord_ext: torch.Tensor, atype_ext: torch.Tensor, nloc: int) -> torch.Tensor:
        """Type-split neighbour list (nf, nloc, nsel) as dpmodel ``build_neighbor_list`` (all pairs)
        of ``coord_ext`` (nf, nall, 3) Å and ``atype_ext`` (nf, nall); the first ``nloc`` atoms are local.

        The same list in less time: dpmodel sorts every row of the (nf, nloc, nall)
        distances stably and drops the first entry (the atom itself, at distance -1) and
        those beyond ``rcut``. Here one ``torch.cdist`` pass (matrix-product form) finds the
        atoms within :data:`LOOSE_MARGIN` above ``rcut`` in index order; only their distances
        are recomputed with dpmodel's arithmetic, so sorting them alone gives the same order
        (stably when a row holds equal distances).
        """
        nf = atype_ext.shape[0]
        far = torch.max(coord_ext) + 2.0 * self.rcut
        coords = torch.where((atype_ext < 0)[:, :, None], far, coord_ext)
        loose = torch.cdist(coords[:, :nloc], coords, compute_mode="use_mm_for_euclid_dist")  # (nf, nloc, nall)
        torch.diagonal(loose, 0, 1, 2).fill_(float("inf"))  # the atom itself
        order, d = self.candidates(coords, loose)
        if order.shape[2] < self.nsel:
            pad = torch.full([nf, nloc, self.nsel - order.shape[2]], -1, dtype=order.dtype, device=order.device)
            order = torch.cat([order, pad], dim=-1)
            d = torch.cat([d, torch.full(pad.shape, float("inf"), dtype=d.dtype, device=d.device)], dim=-1)
        order, d = order[:, :, :self.nsel], d[:, :, :self.nsel]
        real = order >= 0
        keep = real & (d <= self.rcut) & (atype_ext[:, :nloc, None] >= 0)
        nlist = torch.where(keep, order, torch.full_like(order, -1))
        ntype = neighbor_types(atype_ext, nlist, self.ntypes)
        blocks: List[torch.Tensor] = []
        for t, width in enumerate(self.sel):  # each type's atoms, in list order, to the first slots of its block
            is_t = ntype == t
            rank = torch.cumsum(is_t.to(torch.int64), dim=-1) - 1
            slot = torch.where(is_t & (rank < width), rank, torch.full_like(rank, width))  # slot ``width``: discarded
            block = torch.full([nf, nloc, width + 1], -1, dtype=nlist.dtype, device=nlist.device)
            blocks.append(block.scatter(2, slot, nlist)[:, :, :width])
        return torch.cat(blocks, dim=-1)

    def candidates(self, coords: torch.Tensor, loose: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""Atoms within ``rcut`` of each local atom, itself excluded, nearest first (ties: lower index).

        ``coords`` (nf, nall, 3) Å; ``loose`` (nf, nloc, nall) Å, approximate distances, inf for
        the atom itself. Returns (nf, nloc, max count) indices, -1 after each row's last, and
        their distances (Å, inf there) in dpmodel's arithmetic, :math:`\sqrt{(x^2 + y^2) + z^2}` of
        ``coord_j - coord_i``; ``build`` applies the exact cut.
        """
        nf, nloc, nall = loose.shape[0], loose.shape[1], loose.shape[2]
        nrows = nf * nloc
        within = (loose <= self.loose_cut).reshape(nrows, nall)
        count = torch.sum(within, dim=1)
        width = int(torch.max(count).item()) if nrows > 0 else 0
        hits = torch.nonzero(within)  # (nhits, 2), row-major: index order within each row
        row, column = hits[:, 0], hits[:, 1]
        start = torch.cumsum(count, dim=0) - count
        slot = torch.arange(hits.shape[0], dtype=torch.int64, device=loose.device) - torch.index_select(start, 0, row)
        packed = torch.full([nrows * width], -1, dtype=torch.int64, device=loose.device)
        packed = packed.index_copy(0, row * width + slot, column).reshape(nf, nloc, width)
        found = packed >= 0
        safe = torch.where(found, packed, torch.zeros_like(packed))
        delta = take_rows(coords, safe.reshape(nf, nloc * width)).reshape(nf, nloc, width, 3) - coords[:, :nloc, None, :]
        squared = delta[..., 0] * delta[..., 0] + delta[..., 1] * delta[..., 1] + delta[..., 2] * delta[..., 2]
        near = torch.where(found, torch.sqrt(squared), torch.full_like(squared, float("inf")))
        ordered, order = torch.sort(near, dim=2)
        tie = (ordered[:, :, 1:] == ordered[:, :, :-1]) & (ordered[:, :, 1:] < float("inf"))
        if bool(torch.any(tie)):  # equal distances (a lattice): ties go to the lower index, as in dpmodel
            ordered, order = torch.sort(near, dim=2, stable=True)
        return torch.gather(packed, 2, order), ordered
