r"""The ``se_e2_r`` descriptor: smooth radial environment through per-type embedding nets.

.. math:: \mathcal D_i = \frac{1}{5}\,\frac{1}{n_\mathrm{nei}}
          \sum_{j=0}^{n_\mathrm{nei}-1} \mathcal G_{t(j)}(\hat s_{ij}),

with :math:`\hat s_{ij}` from :mod:`dpmodel.env_mat` and :math:`\mathcal G_t` one
embedding net per neighbour type (``type_one_side``), or per (centre, neighbour)
type pair otherwise. The mean runs over all ``sel`` slots, padding included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dpmodel.activation import canonical_activation
from dpmodel.capabilities import check_supported
from dpmodel.env_mat import RadialEnv, normalize_env, pair_displacements, radial_env
from dpmodel.errors import ConfigError
from dpmodel.network import EmbeddingNet, NetworkCollection, child_seed
from dpmodel.pair_exclusion import exclusion_mask
from dpmodel.precision import canonical_precision, dtype_of, numpy_dtype
from dpmodel.serialization import check_class, check_version
from dpmodel.slot_sum import Pullback, scaled, sum_over_padding, sum_over_slots, summed
from dpmodel.table import TabulatedEmbedding
from dpmodel.tabulate import deserialize_tables, serialize_tables, tabulate_embeddings
from dpmodel.xp import Array, array_namespace, as_array, device, to_numpy

RES_RESCALE = 0.2
"""Constant factor applied to the averaged embedding in every DeePMD backend."""


@dataclass
class DescriptorCache:
    """What the backward pass needs from a forward pass."""

    env: RadialEnv
    inv_std: Array
    mask: Array | None  # None: no type pair excluded
    pullbacks: list[Pullback] | None  # one per type block; only with need_grad


class DescrptSeR:
    """Smooth radial descriptor ``se_e2_r`` (DeePMD-kit v3 parameters and defaults).

    Parameters follow DeePMD-kit's ``DescrptSeR``; ``ntypes`` is accepted and ignored
    (``len(sel)`` defines it). ``type_one_side=False`` and ``spin`` are refused by
    backends that do not implement them (see :mod:`dpmodel.capabilities`).
    """

    backend = "dpmodel"

    def __init__(self, rcut: float, rcut_smth: float, sel: list[int], neuron: list[int] = [24, 48, 96],
                 resnet_dt: bool = False, trainable: bool = True, type_one_side: bool = True,
                 exclude_types: list[list[int]] = [], env_protection: float = 0.0, set_davg_zero: bool = False,
                 activation_function: str = "tanh", precision: str = "float64", spin: Any = None,
                 type_map: list[str] | None = None, ntypes: int | None = None, seed: Any = None) -> None:
        check_supported("model/descriptor/type_one_side", type_one_side, self.backend)
        check_supported("model/descriptor/spin", spin, self.backend)
        check_supported("model/descriptor/env_protection", env_protection, self.backend)
        _validate(rcut, rcut_smth, sel, neuron)
        self.rcut, self.rcut_smth = float(rcut), float(rcut_smth)
        self.sel = [int(s) for s in sel]
        self.neuron = [int(n) for n in neuron]
        self.resnet_dt, self.trainable, self.type_one_side = bool(resnet_dt), bool(trainable), bool(type_one_side)
        self.exclude_types = [tuple(int(t) for t in pair) for pair in exclude_types]
        self.env_protection, self.set_davg_zero = float(env_protection), bool(set_davg_zero)
        self.activation_function = canonical_activation(activation_function, "model/descriptor/activation_function")
        self.precision = canonical_precision(precision, "model/descriptor/precision")
        self.spin, self.type_map = spin, type_map
        ntypes = len(self.sel)
        self._check_exclude_types(ntypes)
        ndim = 1 if self.type_one_side else 2
        self.embeddings = NetworkCollection(ndim, ntypes, "embedding_network")
        for index in range(ntypes**ndim):
            key = (index,) if ndim == 1 else (index % ntypes, index // ntypes)
            if ndim == 2 and self.is_excluded(*key):
                continue
            self.embeddings[key] = EmbeddingNet(1, self.neuron, self.activation_function, self.resnet_dt,
                                                self.precision, child_seed(seed, index), trainable=self.trainable)
        shape = (ntypes, self.nnei, 1)
        self.davg = np.zeros(shape, dtype=numpy_dtype(self.precision))
        self.dstd = np.ones(shape, dtype=numpy_dtype(self.precision))
        self.tables: list[TabulatedEmbedding | None] | None = None  # set by enable_compression

    # ------------------------------------------------------------------ accessors
    @property
    def ntypes(self) -> int:
        return len(self.sel)

    @property
    def nnei(self) -> int:
        return sum(self.sel)

    @property
    def dim_out(self) -> int:
        return self.neuron[-1]

    def get_rcut(self) -> float:
        return self.rcut

    def get_rcut_smth(self) -> float:
        return self.rcut_smth

    def get_sel(self) -> list[int]:
        return list(self.sel)

    def get_nsel(self) -> int:
        return self.nnei

    def get_ntypes(self) -> int:
        return self.ntypes

    def get_dim_out(self) -> int:
        return self.dim_out

    def get_env_protection(self) -> float:
        return self.env_protection

    def mixed_types(self) -> bool:
        return False

    def is_excluded(self, ti: int, tj: int) -> bool:
        """Whether the unordered type pair ``(ti, tj)`` is in ``exclude_types``."""
        return (ti, tj) in self.exclude_types or (tj, ti) in self.exclude_types

    def _check_exclude_types(self, ntypes: int) -> None:
        for pair in self.exclude_types:
            if len(pair) != 2 or not all(0 <= t < ntypes for t in pair):
                raise ConfigError(f"model/descriptor/exclude_types entry {list(pair)} must be a pair of types in [0, {ntypes})")

    # ------------------------------------------------------------------ forward
    def call(self, coord_ext: Array, atype_ext: Array, nlist: Array) -> Array:
        """Descriptor of every local atom.

        Parameters
        ----------
        coord_ext : shape (nf, nall, 3) or (nf, nall*3), float; Å
        atype_ext : shape (nf, nall), int; values in ``[0, ntypes)``
        nlist : shape (nf, nloc, nnei), int; from :func:`dpmodel.neighbor.build_neighbor_list`

        Returns
        -------
        Array, shape (nf, nloc, ng), float64
        """
        descriptor, _ = self.forward(coord_ext, atype_ext, nlist)
        return descriptor

    def forward(self, coord_ext: Array, atype_ext: Array, nlist: Array, need_grad: bool = False):
        """Descriptor (float64) and, with ``need_grad``, the cache for :meth:`pair_gradient`."""
        xp = array_namespace(coord_ext, atype_ext, nlist)
        nf = nlist.shape[0]
        coord = xp.astype(xp.reshape(coord_ext, (nf, -1, 3)), dtype_of(xp, self.precision))
        return self.forward_pairs(pair_displacements(coord, nlist), atype_ext, nlist, need_grad)

    def forward_pairs(self, diff: Array, atype_ext: Array, nlist: Array, need_grad: bool = False,
                      widths: list[int] | None = None):
        """Descriptor from pair displacements ``diff`` (nf, nloc, nnei, 3), Å.

        Every coordinate dependence passes through ``diff``, so a backend's autodiff of
        the energy with respect to ``diff`` gives the pair gradients of
        :func:`dpmodel.forces.forces_and_virials`. With ``widths`` (from
        :func:`dpmodel.neighbor.trim_neighbor_list`), ``diff`` and ``nlist`` hold only the
        first ``widths[t]`` slots of each type block; the dropped padding slots are added
        back as constants, so the descriptor is that of the full list.
        """
        xp = array_namespace(diff, atype_ext, nlist)
        nloc = nlist.shape[1]
        widths = list(self.sel) if widths is None else list(widths)
        diff = xp.astype(diff, dtype_of(xp, self.precision))
        env = radial_env(diff, nlist, self.rcut, self.rcut_smth, self.env_protection)
        atype_loc = atype_ext[:, :nloc]
        davg, dstd = as_array(xp, self.davg, diff), as_array(xp, self.dstd, diff)
        if widths != list(self.sel):
            slots = as_array(xp, self._kept_slots(widths), nlist)
            davg, dstd = xp.take(davg, slots, axis=1), xp.take(dstd, slots, axis=1)
        s_hat, inv_std = normalize_env(env.s, atype_loc, davg, dstd)
        mask = self.exclusion_mask(atype_ext, nlist) if self.excludes_pairs else None
        if mask is not None:
            s_hat = s_hat * mask
        descriptor, pullbacks = self.embed(s_hat, atype_loc, need_grad, widths)
        descriptor = xp.astype(descriptor, xp.float64)
        return descriptor, DescriptorCache(env, inv_std, mask, pullbacks)


    @property
    def excludes_pairs(self) -> bool:
        """Whether :meth:`exclusion_mask` can hold a zero (``exclude_types`` with ``type_one_side``)."""
        return bool(self.exclude_types) and self.type_one_side

    def exclusion_mask(self, atype_ext: Array, nlist: Array) -> Array:
        """1 where the (centre, neighbour) type pair is kept, 0 where excluded; (nf, nloc, nnei)."""
        xp = array_namespace(atype_ext, nlist)
        if not self.excludes_pairs:
            return xp.ones(nlist.shape, dtype=dtype_of(xp, self.precision), device=device(nlist))
        return exclusion_mask(atype_ext, nlist, self.ntypes, self.exclude_types, numpy_dtype(self.precision))

    def embed(self, s_hat: Array, atype_loc: Array, need_grad: bool = False,
              widths: list[int] | None = None) -> tuple[Array, list[Pullback] | None]:
        """Embed every slot and average; optionally the pullback of each type block.

        Parameters
        ----------
        s_hat : shape (nf, nloc, nnei), or (nf, nloc, sum(widths)) for a trimmed list
        atype_loc : shape (nf, nloc), int
        widths : slots present per type block (default ``sel``); the missing ones are padding

        Returns
        -------
        descriptor : shape (nf, nloc, ng)
        pullbacks : one :data:`Pullback` per type block (:math:`\\partial\\mathcal D_i/\\partial\\hat s_{ij}`
            contracted with the incoming gradient), or None
        """
        xp = array_namespace(s_hat, atype_loc)
        widths = list(self.sel) if widths is None else list(widths)
        scale = RES_RESCALE / self.nnei
        sections = np.cumsum([0, *widths])
        total, pullbacks = 0.0, []
        for tj in range(self.ntypes):
            block = s_hat[:, :, int(sections[tj]):int(sections[tj + 1])]
            value, pullback = self._embed_block(xp, block, atype_loc, tj, need_grad)
            total = total + value
            if widths[tj] < self.sel[tj]:
                total = total + self._padding_sum(xp, atype_loc, tj, widths[tj], s_hat)
            pullbacks.append(scaled(pullback, scale) if need_grad else None)
        return total * scale, pullbacks if need_grad else None

    def _embed_block(self, xp, block: Array, atype_loc: Array, tj: int, need_grad: bool):
        """Summed embedding of the slots of neighbour type ``tj`` (nf, nloc, ng), and its pullback."""
        if self.type_one_side:
            return sum_over_slots(self.embedding((tj,)), block, None, need_grad)
        value, pullbacks = 0.0, []
        for ti in range(self.ntypes):
            net = self.embedding((ti, tj))
            if net is None:
                continue
            centre = xp.astype(atype_loc == ti, block.dtype)[:, :, None]
            v, pullback = sum_over_slots(net, block, centre, need_grad)
            value = value + v
            pullbacks.append(pullback)
        if isinstance(value, float):
            nf, nloc = block.shape[0], block.shape[1]
            value = xp.zeros((nf, nloc, self.dim_out), dtype=block.dtype, device=device(block))
            return value, (lambda grad: xp.zeros_like(block)) if need_grad else None
        return value, summed(pullbacks) if need_grad else None

    def _kept_slots(self, widths: list[int]) -> np.ndarray:
        """Slot indices of the full list kept by a trimmed one (the first ``widths[t]`` per block)."""
        starts = np.cumsum([0, *self.sel])[:-1]
        return np.concatenate([np.arange(start, start + width) for start, width in zip(starts, widths)]).astype(np.int64)

    def _padding_sum(self, xp, atype_loc: Array, tj: int, width: int, like: Array) -> Array:
        """Summed embedding of the padding slots ``width:sel[tj]`` of block ``tj``; (nf, nloc, ng).

        A padding slot has :math:`s = 0`, so :math:`\\hat s = -\\mu/\\sigma` of its centre
        type and slot, and the exclusion mask is 1 (:func:`dpmodel.slot_sum.sum_over_padding`).
        """
        start = int(sum(self.sel[:tj]))
        first, stop = start + width, start + self.sel[tj]
        s_pad = -as_array(xp, self.davg[:, first:stop, :], like) / as_array(xp, self.dstd[:, first:stop, :], like)
        nets = [self.embedding((tj,) if self.type_one_side else (ti, tj)) for ti in range(self.ntypes)]
        per_type = sum_over_padding(nets, s_pad, self.dim_out)  # (ntypes, ng)
        nf, nloc = atype_loc.shape
        return xp.reshape(xp.take(per_type, xp.reshape(atype_loc, (-1,)), axis=0), (nf, nloc, self.dim_out))

    def embedding(self, key: tuple[int, ...]) -> EmbeddingNet | TabulatedEmbedding | None:
        """What embeds the slots of net ``key``: its table when compressed, else the net."""
        if self.tables is not None:
            table = self.tables[self.embeddings.flat_index(key)]
            if table is not None:
                return table
        return self.embeddings[key]

    # ------------------------------------------------------------------ backward
    def pair_gradient(self, cache: DescriptorCache, grad_descriptor: Array) -> Array:
        r"""Pull :math:`\partial E/\partial\mathcal D` back to every pair displacement.

        Parameters
        ----------
        cache : from :meth:`forward` with ``need_grad=True``
        grad_descriptor : shape (nf, nloc, ng); eV per descriptor unit

        Returns
        -------
        Array, shape (nf, nloc, nnei, 3), float64; :math:`\partial E/\partial\mathbf d_{ij}`, eV/Å.
        """
        xp = array_namespace(grad_descriptor, cache.inv_std)
        grad = xp.astype(grad_descriptor, cache.inv_std.dtype)
        de_dshat = xp.concat([pullback(grad) for pullback in cache.pullbacks], axis=2)
        de_dr = de_dshat * cache.inv_std * cache.env.ds_dr
        if cache.mask is not None:
            de_dr = de_dr * cache.mask
        unit = cache.env.diff / cache.env.r[..., None]
        return xp.astype(de_dr[..., None] * unit, xp.float64)

    # ------------------------------------------------------------------ statistics
    def set_stat(self, mean: np.ndarray, stddev: np.ndarray) -> None:
        """Store per-centre-type statistics, each of shape (ntypes,), in every slot."""
        dtype = numpy_dtype(self.precision)
        ones = np.ones((self.ntypes, self.nnei, 1))
        self.davg = (np.asarray(mean, dtype=np.float64)[:, None, None] * ones).astype(dtype)
        self.dstd = (np.asarray(stddev, dtype=np.float64)[:, None, None] * ones).astype(dtype)
        if self.set_davg_zero:
            self.davg = np.zeros_like(self.davg)

    # ------------------------------------------------------------------ compression
    def enable_compression(self, min_nbor_dist: float, step: float = 0.01, extrapolate: float = 5,
                           check_frequency: int = -1) -> None:
        """Tabulate every embedding net (:mod:`dpmodel.tabulate`); :meth:`embed` then uses the tables.

        Parameters
        ----------
        min_nbor_dist : smallest neighbour distance of the training data; Å
        step : stride of the fine table (the coarse one is ``10 * step``)
        extrapolate : the coarse table ends at ``extrapolate`` times the fine table's upper bound
        check_frequency : count inputs beyond the tables every this many evaluations; -1 is off
        """
        self.tables = tabulate_embeddings(
            self.embeddings, to_numpy(self.davg), to_numpy(self.dstd), self.rcut_smth, self.rcut, self.sel,
            self.type_one_side, min_nbor_dist, step, extrapolate, check_frequency,
            numpy_dtype(self.precision))

    # ------------------------------------------------------------------ serialization
    def serialize(self) -> dict:
        """DeePMD-kit v3 descriptor dict (``@class: Descriptor``, ``type: se_r``).

        ``@version`` 2, or 3 with a ``compress`` entry (DeePMD-kit HEAD) when tabulated.
        """
        data = {
            "@class": "Descriptor",
            "type": "se_r",
            "@version": 2 if self.tables is None else 3,
            "rcut": self.rcut,
            "rcut_smth": self.rcut_smth,
            "sel": list(self.sel),
            "neuron": list(self.neuron),
            "resnet_dt": self.resnet_dt,
            "trainable": self.trainable,
            "type_one_side": self.type_one_side,
            "exclude_types": [list(p) for p in self.exclude_types],
            "env_protection": self.env_protection,
            "set_davg_zero": self.set_davg_zero,
            "activation_function": self.activation_function,
            "precision": self.precision,
            "spin": self.spin,
            "env_mat": {"rcut": self.rcut, "rcut_smth": self.rcut_smth, "protection": self.env_protection,
                        "use_exp_switch": False},
            "embeddings": self.embeddings.serialize(),
            "@variables": {"davg": np.array(to_numpy(self.davg)), "dstd": np.array(to_numpy(self.dstd))},
            "type_map": self.type_map,
        }
        if self.tables is not None:
            data["compress"] = serialize_tables(self.tables, numpy_dtype(self.precision))
        return data

    @classmethod
    def deserialize(cls, data: dict) -> "DescrptSeR":
        """Build from a DeePMD-kit v3 descriptor dict (``@version`` 1 to 3; 3 may carry ``compress``)."""
        data = dict(data)
        check_class(data, "Descriptor", "se_r")
        check_version(data, "Descriptor se_r", 3)
        variables = data.pop("@variables")
        embeddings = data.pop("embeddings")
        compress = data.pop("compress", None)
        data.pop("env_mat", None)
        obj = cls(**data)
        obj.embeddings = NetworkCollection.deserialize(embeddings)
        dtype = numpy_dtype(obj.precision)
        obj.davg = np.asarray(variables["davg"], dtype=dtype).reshape(obj.ntypes, obj.nnei, 1)
        obj.dstd = np.asarray(variables["dstd"], dtype=dtype).reshape(obj.ntypes, obj.nnei, 1)
        if compress is not None:
            obj.tables = deserialize_tables(compress, len(obj.embeddings.networks), dtype)
        return obj


def _validate(rcut: float, rcut_smth: float, sel: list[int], neuron: list[int]) -> None:
    """Clear errors for impossible hyper-parameters, naming the key and value."""
    if not isinstance(sel, (list, tuple)) or not sel:
        raise ConfigError(f"model/descriptor/sel = {sel!r}: expected a non-empty list of neighbour counts, one per type")
    for t, count in enumerate(sel):
        if int(count) != count or count < 0:
            raise ConfigError(f"model/descriptor/sel[{t}] = {count!r}: expected a non-negative integer")
    if not rcut > 0:
        raise ConfigError(f"model/descriptor/rcut = {rcut!r}: expected a positive cut-off radius in Å")
    if not 0 <= rcut_smth < rcut:
        raise ConfigError(f"model/descriptor/rcut_smth = {rcut_smth!r}: expected 0 <= rcut_smth < rcut = {rcut!r}")
    if not neuron or any(int(n) <= 0 for n in neuron):
        raise ConfigError(f"model/descriptor/neuron = {neuron!r}: expected a non-empty list of positive widths")
