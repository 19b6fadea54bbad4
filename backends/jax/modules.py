"""dpmodel's se_e2_r classes holding ``jax.numpy`` arrays, and their parameter pytree.

A JAX object here *is* the dpmodel object: same attributes, same ``call`` code, run
on ``jax.numpy`` through ``array_api_compat``; only the stored arrays differ. The
parameters form a plain pytree (nested dicts and lists, see :func:`get_params`) that
:func:`bind` injects into a shallow copy of a model, so energy functions are pure in
the parameters and can be traced by ``jax.jit`` / ``jax.grad``.

Precision: JAX computes in 32 bits unless ``jax_enable_x64`` is set. This backend
never changes that global flag; every entry point that creates or evaluates arrays
(``deserialize``, ``backends.jax.model``, ``io``, ``train``) runs inside
:func:`x64`, the scoped ``jax.enable_x64(True)`` context. Code that calls the
objects directly should do the same (``with x64(): ...``).
"""

from __future__ import annotations

import copy
import dataclasses
from contextlib import AbstractContextManager
from typing import Any

import array_api_compat
import jax
import jax.numpy as jnp
import numpy as np

from backends.jax import row_sum
from dpmodel import descriptor as dp_descriptor
from dpmodel import fitting as dp_fitting
from dpmodel import model as dp_model
from dpmodel.network import NetworkCollection
from dpmodel.table import TabulatedEmbedding, register_overflow_reporter
from dpmodel.xp import register_segment_sum, register_weighted_row_sum

__all__ = ["DescrptSeR", "EnergyFitting", "EnergyModel", "bind", "get_params", "model_from_dict", "split_trainable",
           "merge_trainable", "x64"]

Params = dict
"""Parameter pytree of an :class:`EnergyModel` (nested dicts/lists of arrays or None)."""

_FITTING_STATS = ("bias_atom_e", "fparam_avg", "fparam_inv_std", "aparam_avg", "aparam_inv_std")


def x64() -> AbstractContextManager:
    """Scoped float64 for JAX (``jax.enable_x64(True)``); the global flag is left alone."""
    return jax.enable_x64(True)


def _segment_sum(values: Any, segment: Any, nseg: int) -> Any:
    return jax.ops.segment_sum(values, segment, num_segments=nseg)


def _report_overflow(count: Any, record: Any) -> None:
    """Deliver a table-overflow count from compiled code to the host (``jax.debug.callback``)."""
    jax.debug.callback(record, count)


_REGISTERED: list[bool] = []


def register_native_ops() -> None:
    """Register, once, what dpmodel lets a backend inject for ``jax.numpy`` arrays.

    ``jax.ops.segment_sum`` for :func:`dpmodel.xp.segment_sum`, the chunked table sum of
    :mod:`backends.jax.row_sum` for :func:`dpmodel.xp.weighted_row_sum`, and a ``jax.debug.callback``
    that brings the overflow counts of compressed tables (``check_frequency > 0``) out of
    jit-compiled code (:func:`dpmodel.table.register_overflow_reporter`).
    """
    if not _REGISTERED:
        register_segment_sum(array_api_compat.is_jax_namespace, _segment_sum)
        register_weighted_row_sum(array_api_compat.is_jax_namespace, row_sum.weighted_row_sum)
        register_overflow_reporter(array_api_compat.is_jax_namespace, _report_overflow)
        _REGISTERED.append(True)


register_native_ops()


class DescrptSeR(dp_descriptor.DescrptSeR):
    """dpmodel ``DescrptSeR`` refusing what JAX does not implement (``type_one_side=False``)."""

    backend = "jax"


class EnergyFitting(dp_fitting.EnergyFitting):
    """dpmodel ``EnergyFitting``; parameters become ``jax.numpy`` arrays via :class:`EnergyModel`."""


class EnergyModel(dp_model.EnergyModel):
    """dpmodel ``EnergyModel`` whose arrays are ``jax.numpy`` arrays.

    ``call`` / ``call_lower`` return forces and virials from ``jax.grad`` under
    ``jax.jit`` (:mod:`backends.jax.model`) instead of dpmodel's analytic pass.
    """

    descriptor_class = DescrptSeR
    fitting_class = EnergyFitting

    @classmethod
    def deserialize(cls, data: dict) -> "EnergyModel":
        """Build from a DeePMD-kit v3 model dict; arrays keep their dtype (float64 via :func:`x64`)."""
        numpy_model = super().deserialize(data)
        with x64():
            params = jax.tree.map(jnp.asarray, get_params(numpy_model))
        return bind(numpy_model, params)

    @property
    def params(self) -> Params:
        """The parameter pytree (see :func:`get_params`)."""
        return get_params(self)

    def runner(self):
        """The jit-compiled evaluator of this model (created once, see :class:`backends.jax.model.Runner`)."""
        runner = self.__dict__.get("_runner")
        if runner is None:
            from backends.jax.model import Runner

            runner = self.__dict__["_runner"] = Runner(self)
        return runner

    def call(self, coord, atype, box=None, fparam=None, aparam=None, do_atomic_virial: bool = False) -> dict:
        """dpmodel's :meth:`~dpmodel.model.EnergyModel.call`, forces by autodiff; NumPy-shaped outputs as jax arrays.

        The neighbour list is built on the host (NumPy) and ``nall`` is padded to a
        bucket, so frames of one system reuse one compilation.
        """
        return self.runner().call(coord, atype, box, fparam, aparam, do_atomic_virial, as_numpy=False)

    def call_lower(self, coord_ext, atype_ext, nlist, mapping, fparam=None, aparam=None,
                   do_atomic_virial: bool = False) -> dict:
        """dpmodel's :meth:`~dpmodel.model.EnergyModel.call_lower`, forces by autodiff under ``jax.jit``."""
        return self.runner().lower(coord_ext, atype_ext, nlist, mapping, fparam, aparam, do_atomic_virial)


def model_from_dict(data: dict) -> EnergyModel:
    """A JAX :class:`EnergyModel` from a serialized model dict (checks as :mod:`dpmodel.model_factory`)."""
    from dpmodel.model_factory import model_from_dict as build

    return build(data, EnergyModel)


# ---------------------------------------------------------------------- parameter pytree
def _layers_params(net: Any) -> list | None:
    if net is None:
        return None
    return [{"w": layer.w, "b": layer.b, "idt": layer.idt} for layer in net.layers]


def _bind_collection(collection: NetworkCollection, params: list) -> NetworkCollection:
    new = copy.copy(collection)
    new.networks = []
    for net, net_params in zip(collection.networks, params):
        if net is None:
            new.networks.append(None)
            continue
        bound = copy.copy(net)
        bound.layers = [dataclasses.replace(layer, **p) for layer, p in zip(net.layers, net_params)]
        new.networks.append(bound)
    return new


def get_params(model: dp_model.EnergyModel) -> Params:
    """Every array of ``model`` as a pytree::

        {"descriptor": {"davg", "dstd", "embeddings": [[{"w", "b", "idt"} per layer] per net],
                        "tables": None or [compress table per net in the layout of
                                           TabulatedEmbedding.rows, or None]},
         "fitting": {"bias_atom_e", "fparam_avg", "fparam_inv_std", "aparam_avg", "aparam_inv_std",
                     "nets": [[{"w", "b", "idt"} per layer] per net]},
         "out_bias", "out_std"}

    Absent arrays (``b``, ``idt``, unused statistics, missing nets) are ``None``.
    """
    desc, fit = model.descriptor, model.fitting
    return {
        "descriptor": {"davg": desc.davg, "dstd": desc.dstd,
                       "embeddings": [_layers_params(net) for net in desc.embeddings.networks],
                       "tables": None if desc.tables is None else [None if t is None else t.rows(np, t.data)
                                                                   for t in desc.tables]},
        "fitting": {**{k: getattr(fit, k) for k in _FITTING_STATS},
                    "nets": [_layers_params(net) for net in fit.nets.networks]},
        "out_bias": model.out_bias,
        "out_std": model.out_std,
    }


def bind(model: dp_model.EnergyModel, params: Params) -> dp_model.EnergyModel:
    """A shallow copy of ``model`` holding ``params`` (arrays or tracers); ``model`` is unchanged."""
    desc = copy.copy(model.descriptor)
    desc.davg, desc.dstd = params["descriptor"]["davg"], params["descriptor"]["dstd"]
    desc.embeddings = _bind_collection(model.descriptor.embeddings, params["descriptor"]["embeddings"])
    tables = params["descriptor"].get("tables")
    if desc.tables is not None and tables is not None:  # compressed: tables are arguments, not baked-in constants
        desc.tables = [t if t is None or rows is None else t.holding_rows(rows) for t, rows in zip(desc.tables, tables)]
    fit = copy.copy(model.fitting)
    for key in _FITTING_STATS:
        setattr(fit, key, params["fitting"][key])
    fit.nets = _bind_collection(model.fitting.nets, params["fitting"]["nets"])
    new = copy.copy(model)
    new.__dict__.pop("_runner", None)
    new.descriptor, new.fitting = desc, fit
    new.out_bias, new.out_std = params["out_bias"], params["out_std"]
    return new


def _split_nets(collection: NetworkCollection, params: list, trainable: bool) -> list:
    return [None if net is None else [p if layer.trainable == trainable else dict.fromkeys(p)
                                      for layer, p in zip(net.layers, net_params)]
            for net, net_params in zip(collection.networks, params)]


def split_trainable(model: dp_model.EnergyModel, params: Params) -> tuple[Params, Params]:
    """``(trainable, frozen)``: the layer weights of trainable layers, and everything else.

    Both have the layout of ``params`` with ``None`` leaves where the other part holds
    the array; :func:`merge_trainable` reverses the split. Statistics (``davg``,
    ``dstd``, ``bias_atom_e``, ``out_bias``...) are never trained.
    """
    desc, fit = model.descriptor, model.fitting

    def part(trainable: bool) -> Params:
        out = jax.tree.map(lambda leaf: None if trainable else leaf, params, is_leaf=lambda x: x is None)
        out["descriptor"]["embeddings"] = _split_nets(desc.embeddings, params["descriptor"]["embeddings"], trainable)
        out["fitting"]["nets"] = _split_nets(fit.nets, params["fitting"]["nets"], trainable)
        return out

    return part(True), part(False)


def merge_trainable(trainable: Params, frozen: Params) -> Params:
    """Inverse of :func:`split_trainable`: take each leaf from whichever side holds it."""
    return jax.tree.map(lambda a, b: b if a is None else a, trainable, frozen, is_leaf=lambda x: x is None)
