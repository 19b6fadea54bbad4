r"""The standard ``se_e2_r`` energy model: descriptor + energy fitting + output bias.

.. math:: E = \sum_i m_i\,\big(E_i + \beta_{t_i}\big),

with :math:`E_i` from :mod:`dpmodel.fitting`, :math:`\beta` = ``out_bias`` and
:math:`m_i` zero for virtual atoms (type < 0) and ``atom_exclude_types``. Forces and
virials are analytic (:mod:`dpmodel.forces`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dpmodel.descriptor import DescrptSeR
from dpmodel.env_mat import pair_displacements
from dpmodel.fitting import EnergyFitting
from dpmodel.forces import forces_and_virials
from dpmodel.neighbor import narrow_neighbor_list, neighbor_data, trim_neighbor_list
from dpmodel.serialization import check_class, check_version
from dpmodel.xp import Array, array_namespace, as_array, device, take_rows, to_numpy


class EnergyModel:
    """DeePMD-kit v3 standard energy model (``@class: Model``, ``type: standard``)."""

    descriptor_class = DescrptSeR
    fitting_class = EnergyFitting

    def __init__(self, descriptor: DescrptSeR, fitting: EnergyFitting, type_map: list[str],
                 atom_exclude_types: list[int] = [], pair_exclude_types: list[list[int]] = [],
                 rcond: float | None = None, preset_out_bias: Any = None) -> None:
        self.descriptor, self.fitting = descriptor, fitting
        self.type_map = list(type_map)
        self.atom_exclude_types = [int(t) for t in atom_exclude_types]
        self.pair_exclude_types = [tuple(int(t) for t in p) for p in pair_exclude_types]
        self.rcond, self.preset_out_bias = rcond, preset_out_bias
        ntypes = len(self.type_map)
        if descriptor.ntypes != ntypes:
            raise ValueError(f"type_map has {ntypes} types but descriptor sel has {descriptor.ntypes} entries")
        self.out_bias = np.zeros((1, ntypes, 1))
        self.out_std = np.ones((1, ntypes, 1))

    # ------------------------------------------------------------------ accessors
    def get_type_map(self) -> list[str]:
        return list(self.type_map)

    def get_rcut(self) -> float:
        return self.descriptor.rcut

    def get_sel(self) -> list[int]:
        return self.descriptor.get_sel()

    def get_dim_fparam(self) -> int:
        return self.fitting.numb_fparam

    def get_dim_aparam(self) -> int:
        return self.fitting.numb_aparam

    # ------------------------------------------------------------------ evaluation
    def call(self, coord: Array, atype: Array, box: Array | None = None, fparam: Array | None = None,
             aparam: Array | None = None, do_atomic_virial: bool = False) -> dict[str, Array]:
        """Energy, forces and virials of whole frames.

        Parameters
        ----------
        coord : shape (nf, nloc, 3) or (nf, nloc*3), float; Å
        atype : shape (nf, nloc), int; -1 marks a virtual (padding) atom
        box : shape (nf, 9) or None (no periodicity); Å, rows are lattice vectors
        fparam : shape (nf, numb_fparam) or None
        aparam : shape (nf, nloc, numb_aparam) or None

        Returns
        -------
        dict with ``energy`` (nf, 1) eV, ``atom_energy`` (nf, nloc, 1) eV, ``force`` (nf, nloc, 3) eV/Å,
        ``virial`` (nf, 9) eV, ``mask`` (nf, nloc) and, if requested, ``atom_virial`` (nf, nloc, 9) eV.
        """
        xp = array_namespace(coord, atype, box)
        nf, nloc = atype.shape
        coord = xp.reshape(xp.astype(coord, xp.float64), (nf, nloc, 3))
        box = None if box is None else xp.reshape(xp.astype(box, xp.float64), (nf, 9))
        coord_ext, atype_ext, mapping, nlist = neighbor_data(coord, atype, box, self.get_rcut(), self.get_sel())
        return self.call_lower(coord_ext, atype_ext, nlist, mapping, fparam, aparam, do_atomic_virial)

    def call_lower(self, coord_ext: Array, atype_ext: Array, nlist: Array, mapping: Array,
                   fparam: Array | None = None, aparam: Array | None = None,
                   do_atomic_virial: bool = False) -> dict[str, Array]:
        """Same outputs as :meth:`call` from extended atoms and a prepared neighbour list.

        Parameters
        ----------
        coord_ext : shape (nf, nall, 3); Å
        atype_ext : shape (nf, nall), int
        nlist : shape (nf, nloc, nnei), int; type-split as by :func:`dpmodel.neighbor.build_neighbor_list`
        mapping : shape (nf, nall), int; local index of every extended atom
        """
        xp = array_namespace(coord_ext, atype_ext, nlist)
        diff, nlist, widths = self.pairs(coord_ext, atype_ext, nlist)
        atom_energy, mask, pair_grad, diff = self.atomic_energy_from_pairs(diff, atype_ext, nlist, fparam, aparam,
                                                                            True, widths)
        force, virial, atom_virial = forces_and_virials(pair_grad, diff, nlist, mapping, do_atomic_virial)
        out = {
            "atom_energy": atom_energy,
            "energy": xp.sum(atom_energy, axis=1),
            "force": force,
            "virial": virial,
            "mask": mask,
        }
        if do_atomic_virial:
            out["atom_virial"] = atom_virial
        return out

    def pairs(self, coord_ext: Array, atype_ext: Array, nlist: Array) -> tuple[Array, Array, list[int]]:
        """Pair displacements (nf, nloc, n, 3) Å of the neighbour list without ``pair_exclude_types``
        and trimmed of its all-padding tails (:func:`dpmodel.neighbor.trim_neighbor_list`), that
        list, and the kept ``widths``: the inputs of :meth:`atomic_energy_from_pairs` for eager
        (untraced) arrays."""
        xp = array_namespace(coord_ext, atype_ext, nlist)
        nlist, widths = trim_neighbor_list(self.exclude_pairs(atype_ext, nlist), self.get_sel())
        return pair_displacements(xp.reshape(coord_ext, (nlist.shape[0], -1, 3)), nlist), nlist, widths

    def compiled_layout(self, atype: np.ndarray, nlist: np.ndarray, widths: tuple[int, ...] | None
                        ) -> tuple[np.ndarray, tuple]:
        """A batch's neighbour list for a compiled program, and the program's static layout.

        Parameters
        ----------
        atype : shape (nf, nloc), int; the batch's local atom types (host-side)
        nlist : shape (nf, nloc, sum(sel)), int
        widths : slots to keep per type block (:func:`dpmodel.neighbor.slot_widths`) or None

        Returns
        -------
        ``nlist`` cut to ``widths`` when it fills no slot beyond them, and the layout
        ``(type_blocks, widths)``: the fitting's blocks (:meth:`dpmodel.fitting.EnergyFitting.blocks_of`)
        and the widths used (None: the whole list), the arguments of the same names of
        :meth:`atomic_energy_from_pairs`.
        """
        nlist, widths = narrow_neighbor_list(nlist, self.get_sel(), widths)
        return nlist, (self.fitting.blocks_of(atype), widths)

    def atomic_energy(self, coord_ext: Array, atype_ext: Array, nlist: Array, fparam: Array | None = None,
                      aparam: Array | None = None, need_grad: bool = False):
        """Masked atomic energies (nf, nloc, 1) eV and the atom mask (nf, nloc), int32.

        With ``need_grad`` also the pair gradients (nf, nloc, nnei, 3) eV/Å and the
        pair displacements (nf, nloc, nnei, 3) Å for :func:`dpmodel.forces.forces_and_virials`.
        """
        xp = array_namespace(coord_ext, atype_ext, nlist)
        nlist = self.exclude_pairs(atype_ext, nlist)
        diff = pair_displacements(xp.reshape(coord_ext, (nlist.shape[0], -1, 3)), nlist)
        return self.atomic_energy_from_pairs(diff, atype_ext, nlist, fparam, aparam, need_grad)

    def atomic_energy_from_pairs(self, diff: Array, atype_ext: Array, nlist: Array, fparam: Array | None = None,
                                 aparam: Array | None = None, need_grad: bool = False,
                                 widths: list[int] | None = None, type_blocks: Sequence[int] | None = None,
                                 split_types: bool | None = None):
        """:meth:`atomic_energy` from pair displacements (nf, nloc, nnei, 3), Å.

        ``nlist`` must already have ``pair_exclude_types`` removed (:meth:`exclude_pairs`);
        ``widths``: slots kept per type block of a list cut by :func:`dpmodel.neighbor.trim_neighbor_list`
        or :func:`dpmodel.neighbor.cut_neighbor_list` (the others were padding).
        ``split_types`` (default: when ``widths`` are given, for concrete arrays): each fitting
        net gathers its own type's atoms. ``type_blocks``: atom counts per type of frames whose
        atoms are sorted by type (each fitting net on its own block, a static slice;
        :meth:`dpmodel.fitting.EnergyFitting.call`).
        Backends differentiate this function with respect to ``diff``.
        """
        xp = array_namespace(diff, atype_ext, nlist)
        nloc = nlist.shape[1]
        safe_ext = xp.where(atype_ext >= 0, atype_ext, xp.zeros_like(atype_ext))
        descriptor, cache = self.descriptor.forward_pairs(diff, safe_ext, nlist, need_grad, widths)
        atype = safe_ext[:, :nloc]
        split_types = widths is not None if split_types is None else split_types
        energy, grad = self.fitting.call(descriptor, atype, fparam, aparam, need_grad, split_types=split_types,
                                         type_blocks=type_blocks)
        bias = xp.take(as_array(xp, self.out_bias[0, :, 0], descriptor), xp.reshape(atype, (-1,)))
        mask = self.atom_mask(atype_ext[:, :nloc])
        maskf = xp.astype(mask, xp.float64)[..., None]
        energy = (energy + xp.reshape(bias, energy.shape)) * maskf
        if not need_grad:
            return energy, mask
        pair_grad = self.descriptor.pair_gradient(cache, grad * maskf)
        return energy, mask, pair_grad, diff

    def atom_mask(self, atype: Array) -> Array:
        """1 for real atoms whose type is not in ``atom_exclude_types``; (nf, nloc), int32."""
        xp = array_namespace(atype)
        keep = atype >= 0
        for t in self.atom_exclude_types:
            keep = keep & (atype != t)
        return xp.astype(keep, xp.int32)

    def exclude_pairs(self, atype_ext: Array, nlist: Array) -> Array:
        """Set neighbours of ``pair_exclude_types`` pairs to -1."""
        if not self.pair_exclude_types:
            return nlist
        xp = array_namespace(atype_ext, nlist)
        nf, nloc, nnei = nlist.shape
        real = nlist >= 0
        safe = xp.where(real, nlist, xp.zeros_like(nlist))
        ntype = xp.reshape(take_rows(atype_ext, xp.reshape(safe, (nf, nloc * nnei))), (nf, nloc, nnei))
        ctype = atype_ext[:, :nloc, None]
        drop = xp.zeros(nlist.shape, dtype=xp.bool, device=device(nlist))
        for ti, tj in self.pair_exclude_types:
            drop = drop | ((ctype == ti) & (ntype == tj)) | ((ctype == tj) & (ntype == ti))
        return xp.where(real & ~drop, nlist, xp.full_like(nlist, -1))

    # ------------------------------------------------------------------ serialization
    def serialize(self) -> dict:
        """DeePMD-kit v3 model dict (``@class: Model``, ``type: standard``, ``@version`` 2)."""
        return {
            "type_map": list(self.type_map),
            "atom_exclude_types": list(self.atom_exclude_types),
            "pair_exclude_types": [list(p) for p in self.pair_exclude_types],
            "rcond": self.rcond,
            "preset_out_bias": self.preset_out_bias,
            "@variables": {"out_bias": np.array(to_numpy(self.out_bias), dtype=np.float64),
                           "out_std": np.array(to_numpy(self.out_std), dtype=np.float64)},
            "@class": "Model",
            "type": "standard",
            "@version": 2,
            "descriptor": self.descriptor.serialize(),
            "fitting": self.fitting.serialize(),
        }

    @classmethod
    def deserialize(cls, data: dict) -> "EnergyModel":
        """Build from a DeePMD-kit v3 standard model dict."""
        data = dict(data)
        check_class(data, "Model", "standard")
        check_version(data, "Model standard", 2, 2)
        variables = data.pop("@variables", {})
        descriptor = cls.descriptor_class.deserialize(data.pop("descriptor"))
        fitting = cls.fitting_class.deserialize(data.pop("fitting"))
        obj = cls(descriptor, fitting, **data)
        ntypes = len(obj.type_map)
        if variables.get("out_bias") is not None:
            obj.out_bias = np.asarray(variables["out_bias"], dtype=np.float64).reshape(1, ntypes, -1)[:, :, :1]
        if variables.get("out_std") is not None:
            obj.out_std = np.asarray(variables["out_std"], dtype=np.float64).reshape(1, ntypes, -1)[:, :, :1]
        return obj
