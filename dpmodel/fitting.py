r"""Energy fitting: one fitting net per atom type maps a descriptor to an atomic energy.

.. math:: E_i = \mathcal F_{t_i}\big([\mathcal D_i, \tilde f, \tilde a_i]\big) + b_{t_i},

with :math:`\tilde f = (f - \bar f)\,\sigma_f^{-1}` the normalised frame parameters,
:math:`\tilde a_i` the normalised atomic parameters and :math:`b` = ``bias_atom_e``.
With ``mixed_types`` a single net serves every type.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dpmodel.network import FittingNet, NetworkCollection, child_seed
from dpmodel.precision import dtype_of, numpy_dtype
from dpmodel.serialization import check_class, check_version
from dpmodel.xp import Array, array_namespace, as_array, device, to_numpy

_STAT_KEYS = ("fparam_avg", "fparam_inv_std", "aparam_avg", "aparam_inv_std")


def type_blocks(atype: np.ndarray, ntypes: int) -> tuple[int, ...] | None:
    """Atom counts per type if every frame of ``atype`` (nf, nat) lists the same types sorted, else None:
    the ``type_blocks`` of :meth:`EnergyFitting.call` (host-side, NumPy)."""
    atype = np.asarray(atype)
    if atype.ndim != 2 or atype.shape[0] == 0 or np.any(atype != atype[:1]):
        return None
    row = atype[0]
    if np.any(row < 0) or np.any(row >= ntypes) or np.any(np.diff(row) < 0):
        return None
    return tuple(int(n) for n in np.bincount(row, minlength=ntypes))


class EnergyFitting:
    """DeePMD-kit v3 ``ener`` fitting (parameters and defaults of ``EnergyFittingNet``)."""

    def __init__(self, ntypes: int, dim_descrpt: int, neuron: list[int] = [120, 120, 120], resnet_dt: bool = True,
                 numb_fparam: int = 0, numb_aparam: int = 0, dim_case_embd: int = 0, bias_atom_e: Any = None,
                 rcond: float | None = None, tot_ener_zero: bool = False, trainable: Any = None,
                 atom_ener: list | None = None, activation_function: str = "tanh", precision: str = "default",
                 layer_name: Any = None, use_aparam_as_mask: bool = False, spin: Any = None,
                 mixed_types: bool = False, exclude_types: list[int] = [], type_map: list[str] | None = None,
                 seed: Any = None, default_fparam: Any = None) -> None:
        if dim_case_embd:
            raise ValueError(f"fitting dim_case_embd = {dim_case_embd}: multi-task case embedding is not supported")
        self.ntypes, self.dim_descrpt = int(ntypes), int(dim_descrpt)
        self.neuron, self.resnet_dt = list(neuron), bool(resnet_dt)
        self.numb_fparam, self.numb_aparam = int(numb_fparam), int(numb_aparam)
        self.rcond, self.tot_ener_zero, self.atom_ener = rcond, tot_ener_zero, atom_ener
        self.activation_function, self.precision = activation_function, precision
        self.layer_name, self.use_aparam_as_mask, self.spin = layer_name, use_aparam_as_mask, spin
        self.mixed_types, self.exclude_types = bool(mixed_types), [int(t) for t in exclude_types]
        self.type_map, self.default_fparam = type_map, default_fparam
        nlayer = len(self.neuron) + 1
        self.trainable = [True] * nlayer if trainable is None else (
            [bool(trainable)] * nlayer if isinstance(trainable, bool) else list(trainable))
        ndim = 0 if self.mixed_types else 1
        self.nets = NetworkCollection(ndim, self.ntypes, "fitting_network")
        for index in range(self.ntypes**ndim):
            key = () if ndim == 0 else (index,)
            self.nets[key] = FittingNet(self.input_dim, 1, self.neuron, activation_function, self.resnet_dt,
                                        precision, True, child_seed(seed, index), self.trainable)
        bias = np.zeros((self.ntypes, 1)) if bias_atom_e is None else np.asarray(bias_atom_e, dtype=np.float64)
        self.bias_atom_e = bias.reshape(self.ntypes, 1)
        dtype = numpy_dtype(precision)
        self.fparam_avg = np.zeros(self.numb_fparam, dtype) if self.numb_fparam else None
        self.fparam_inv_std = np.ones(self.numb_fparam, dtype) if self.numb_fparam else None
        self.aparam_avg = np.zeros(self.numb_aparam, dtype) if self.numb_aparam else None
        self.aparam_inv_std = np.ones(self.numb_aparam, dtype) if self.numb_aparam else None

    @property
    def input_dim(self) -> int:
        aparam = 0 if self.use_aparam_as_mask else self.numb_aparam
        return self.dim_descrpt + self.numb_fparam + aparam

    def get_dim_fparam(self) -> int:
        return self.numb_fparam

    def get_dim_aparam(self) -> int:
        return self.numb_aparam

    # ------------------------------------------------------------------ forward
    def net_input(self, descriptor: Array, fparam: Array | None = None, aparam: Array | None = None) -> Array:
        """Concatenate the descriptor with normalised frame and atomic parameters.

        Parameters
        ----------
        descriptor : shape (nf, nloc, dim_descrpt)
        fparam : shape (nf, numb_fparam) or None
        aparam : shape (nf, nloc, numb_aparam) or None

        Returns
        -------
        shape (nf, nloc, input_dim), in the fitting precision
        """
        xp = array_namespace(descriptor, fparam, aparam)
        dtype = dtype_of(xp, self.precision)
        nf, nloc = descriptor.shape[0], descriptor.shape[1]
        parts = [xp.astype(descriptor, dtype)]
        if self.numb_fparam:
            if fparam is None:
                if self.default_fparam is None:
                    raise ValueError(f"this model needs fparam of shape (nframes, {self.numb_fparam}); none was given")
                fparam = xp.asarray(np.tile(np.asarray(self.default_fparam, dtype=np.float64), (nf, 1)),
                                    device=device(descriptor))
            f = (xp.astype(xp.reshape(fparam, (nf, self.numb_fparam)), dtype) - as_array(xp, self.fparam_avg, descriptor)) \
                * as_array(xp, self.fparam_inv_std, descriptor)
            parts.append(xp.broadcast_to(f[:, None, :], (nf, nloc, self.numb_fparam)))
        if self.numb_aparam and not self.use_aparam_as_mask:
            if aparam is None:
                raise ValueError(f"this model needs aparam of shape (nframes, natoms, {self.numb_aparam}); none was given")
            a = xp.astype(xp.reshape(aparam, (nf, nloc, self.numb_aparam)), dtype)
            parts.append((a - as_array(xp, self.aparam_avg, descriptor)) * as_array(xp, self.aparam_inv_std, descriptor))
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=-1)

    def call(self, descriptor: Array, atype: Array, fparam: Array | None = None, aparam: Array | None = None,
             need_grad: bool = False, split_types: bool = False,
             type_blocks: Sequence[int] | None = None) -> tuple[Array, Array | None]:
        """Atomic energies and, with ``need_grad``, their gradient w.r.t. the descriptor.

        Parameters
        ----------
        descriptor : shape (nf, nloc, dim_descrpt)
        atype : shape (nf, nloc), int; values in ``[0, ntypes)``
        split_types : run each type's net on its own atoms only (gathered, then put back in
            place) instead of on every atom under a 0/1 mask; needs a concrete (not traced)
            ``atype``, as the row counts depend on its values.
        type_blocks : atom counts per type when every frame lists its atoms sorted by type
            (``atype[:, :type_blocks[0]] == 0``, then type 1, ...): each net runs on its own
            block of atoms, static slices that a compiled (traced) program can take.

        Returns
        -------
        energy : shape (nf, nloc, 1), float64; eV
        grad : shape (nf, nloc, dim_descrpt), float64, or None; :math:`\\partial E_i/\\partial\\mathcal D_i`
        """
        xp = array_namespace(descriptor, atype)
        x = self.net_input(descriptor, fparam, aparam)
        if type_blocks is not None and not self.mixed_types:
            energy, grad = self._type_blocks(xp, x, type_blocks, need_grad)
        elif split_types and not self.mixed_types:
            energy, grad = self._per_type_rows(xp, x, atype, need_grad)
        else:
            energy, grad = self._masked(xp, x, atype, need_grad)
        bias = xp.take(as_array(xp, self.bias_atom_e, descriptor), xp.reshape(atype, (-1,)), axis=0)
        energy = xp.astype(energy, xp.float64) + xp.reshape(bias, energy.shape)
        keep = self._kept(xp, atype)
        energy = energy * keep
        if need_grad:
            grad = xp.astype(grad[..., : self.dim_descrpt], xp.float64) * keep
        return energy, (grad if need_grad else None)

    def _per_type_rows(self, xp, x: Array, atype: Array, need_grad: bool) -> tuple[Array, Array | None]:
        """Energies (and input gradients) with each net on the rows of its own type's atoms."""
        lead = tuple(atype.shape)
        rows, flat = xp.reshape(x, (-1, x.shape[-1])), xp.reshape(atype, (-1,))
        picks, values, grads = [], [], []
        for t in range(self.ntypes):
            pick = xp.nonzero(flat == t)[0]
            picks.append(pick)
            y, g = self._net_on(xp, (t,), xp.take(rows, pick, axis=0), need_grad)
            values.append(y)
            grads.append(g)
        back = xp.argsort(xp.concat(picks))  # row of each atom in the concatenation by type
        energy = xp.reshape(xp.take(xp.concat(values), back, axis=0), (*lead, 1))
        grad = xp.reshape(xp.take(xp.concat(grads), back, axis=0), (*lead, x.shape[-1])) if need_grad else None
        return energy, grad

    def _net_on(self, xp, key: tuple[int, ...], x: Array, need_grad: bool) -> tuple[Array, Array | None]:
        """Net ``key`` on rows ``x`` (..., features): energies (..., 1) and, with ``need_grad``, input gradients."""
        net = self.nets[key]
        if need_grad:
            return net.call_with_input_grad(x, xp.ones_like(x[..., :1]))
        return net.call(x), None

    def blocks_of(self, atype: np.ndarray) -> tuple[int, ...] | None:
        """The ``type_blocks`` argument of :meth:`call` for NumPy ``atype`` (nf, nloc): the atom counts per type
        when every frame lists its atoms sorted by type (:func:`type_blocks`), else None (also with one
        net for all types)."""
        return None if self.mixed_types else type_blocks(atype, self.ntypes)

    def _type_blocks(self, xp, x: Array, blocks: Sequence[int], need_grad: bool) -> tuple[Array, Array | None]:
        """Energies (and input gradients) with the net of type ``t`` on atoms ``[sum(blocks[:t]), sum(blocks[:t + 1]))``."""
        values, grads, start = [], [], 0
        for t, count in enumerate(blocks):
            sub = x[:, start:start + count]
            start += count
            if count == 0:
                continue
            y, g = self._net_on(xp, (t,), sub, need_grad)
            values.append(y)
            grads.append(g)
        if not values:  # no atom at all
            empty = xp.zeros((x.shape[0], 0, 1), dtype=x.dtype, device=device(x))
            return empty, (xp.zeros_like(x) if need_grad else None)
        return xp.concat(values, axis=1), (xp.concat(grads, axis=1) if need_grad else None)

    def _masked(self, xp, x: Array, atype: Array, need_grad: bool) -> tuple[Array, Array | None]:
        """Energies (and input gradients) with every net on every atom, masked by type."""
        energy, grad = 0.0, 0.0
        for key, type_mask in self._net_masks(xp, atype, x.dtype):
            y, g = self._net_on(xp, key, x, need_grad)
            if need_grad:
                grad = grad + g * type_mask
            energy = energy + y * type_mask
        return energy, (grad if need_grad else None)

    def _net_masks(self, xp, atype: Array, dtype):
        """``(net key, 0/1 mask of the atoms it serves)`` for every net."""
        if self.mixed_types:
            return [((), xp.ones((*atype.shape, 1), dtype=dtype, device=device(atype)))]
        return [((t,), xp.astype(atype == t, dtype)[..., None]) for t in range(self.ntypes)]

    def _kept(self, xp, atype: Array) -> Array:
        """1.0 for atoms whose type is not in ``exclude_types``; (nf, nloc, 1), float64."""
        keep = xp.ones(atype.shape, dtype=xp.bool, device=device(atype))
        for t in self.exclude_types:
            keep = keep & (atype != t)
        return xp.astype(keep, xp.float64)[..., None]

    # ------------------------------------------------------------------ serialization
    def serialize(self) -> dict:
        """DeePMD-kit v3 energy fitting dict (``@class: Fitting``, ``type: ener``, ``@version`` 4)."""
        return {
            "@class": "Fitting",
            "@version": 4,
            "var_name": "energy",
            "ntypes": self.ntypes,
            "dim_descrpt": self.dim_descrpt,
            "neuron": list(self.neuron),
            "resnet_dt": self.resnet_dt,
            "numb_fparam": self.numb_fparam,
            "numb_aparam": self.numb_aparam,
            "dim_case_embd": 0,
            "default_fparam": self.default_fparam,
            "rcond": self.rcond,
            "activation_function": self.activation_function,
            "precision": self.precision,
            "mixed_types": self.mixed_types,
            "exclude_types": list(self.exclude_types),
            "nets": self.nets.serialize(),
            "@variables": {
                "bias_atom_e": np.array(to_numpy(self.bias_atom_e), dtype=np.float64),
                "case_embd": None,
                **{k: None if getattr(self, k) is None else np.array(to_numpy(getattr(self, k))) for k in _STAT_KEYS},
            },
            "type_map": self.type_map,
            "tot_ener_zero": self.tot_ener_zero,
            "trainable": list(self.trainable),
            "layer_name": self.layer_name,
            "use_aparam_as_mask": self.use_aparam_as_mask,
            "spin": self.spin,
            "type": "ener",
            "dim_out": 1,
            "atom_ener": self.atom_ener,
        }

    @classmethod
    def deserialize(cls, data: dict) -> "EnergyFitting":
        """Build from a DeePMD-kit v3 energy fitting dict (``@version`` 1 to 4)."""
        data = dict(data)
        check_class(data, "Fitting", "ener")
        check_version(data, "Fitting ener", 4)
        data.pop("var_name", None)
        data.pop("dim_out", None)
        variables = data.pop("@variables")
        nets = data.pop("nets")
        data["bias_atom_e"] = variables["bias_atom_e"]
        obj = cls(**data)
        obj.nets = NetworkCollection.deserialize(nets)
        dtype = numpy_dtype(obj.precision)
        for key in _STAT_KEYS:
            if variables.get(key) is not None:
                setattr(obj, key, np.asarray(variables[key], dtype=dtype).reshape(-1))
        return obj
