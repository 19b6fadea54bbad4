"""dpmodel's se_e2_r classes as ``tf.Module`` objects whose parameters are ``tf.Variable`` objects.

Each class is the dpmodel class plus the :class:`Parameters` mixin: the math is
dpmodel's, run on TensorFlow tensors through :mod:`backends.tf.xp`. What differs:

- :class:`DescrptSeR` has ``backend = "tf"``, so :mod:`dpmodel.capabilities` accepts
  ``type_one_side = false`` and refuses ``env_protection != 0``.
- :class:`TypeEmbedNet` (TensorFlow only, SPEC 7) embeds each atom type; the model
  concatenates its output to the descriptor ahead of one shared fitting net and
  stores it under the model-level key ``"type_embedding"`` (SPEC 7.2 dict).
"""

from __future__ import annotations

import copy
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow as tf

from dpmodel import descriptor as dp_descriptor
from dpmodel import fitting as dp_fitting
from dpmodel import model as dp_model
from dpmodel.activation import canonical_activation
from dpmodel.errors import ConfigError
from dpmodel.network import EmbeddingNet, NetworkCollection
from dpmodel.precision import canonical_precision
from dpmodel.serialization import check_class, check_version
from dpmodel.xp import Array, array_namespace

from backends.tf import xp as tfxp

__all__ = ["DescrptSeR", "EnergyFitting", "EnergyModel", "Parameters", "TypeEmbedNet", "model_from_dict"]

Slot = tuple[str, Any, str, bool]
"""(name, owner object, attribute, trainable) of one parameter array."""


class Parameters(tf.Module):
    """Mixin: the arrays of a dpmodel object become ``tf.Variable`` objects of a ``tf.Module``.

    Attributes stay plain Python objects (no AutoTrackable list wrapping), so the
    dpmodel code and ``serialize()`` see what they expect; the variables are listed by
    :meth:`_slots` and tracked explicitly for checkpoints and SavedModels.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _start_module(self, name: str) -> None:
        tfxp.register()
        tf.Module.__init__(self, name=name)

    def _slots(self) -> Iterator[Slot]:
        """Own parameter arrays; subclasses yield theirs."""
        return iter(())

    def _children(self) -> list["Parameters"]:
        return []

    def adopt(self) -> None:
        """Turn every NumPy parameter array into a ``tf.Variable`` (children first)."""
        for child in self._children():
            child.adopt()
        for name, owner, attr, trainable in self._slots():
            value = getattr(owner, attr)
            if isinstance(value, np.ndarray):
                setattr(owner, attr, tf.Variable(value, trainable=trainable, name=name.replace(".", "_")))

    def named_variables(self) -> list[tuple[str, tf.Variable]]:
        """``(name, variable)`` of every parameter, in a fixed order."""
        named = [(name, getattr(owner, attr)) for name, owner, attr, _ in self._slots()]
        for child in self._children():
            named += [(f"{child.name}.{n}", v) for n, v in child.named_variables()]
        return named

    @property
    def variables(self) -> tuple[tf.Variable, ...]:
        return tuple(v for _, v in self.named_variables())

    @property
    def trainable_variables(self) -> tuple[tf.Variable, ...]:
        return tuple(v for v in self.variables if v.trainable)

    def _trackable_children(self, save_type: Any = "checkpoint", **kwargs: Any) -> dict:
        children = dict(super()._trackable_children(save_type, **kwargs))
        children.update({name.replace(".", "_"): var for name, var in self.named_variables()})
        return children


def _net_slots(prefix: str, nets: NetworkCollection) -> Iterator[Slot]:
    for index, net in enumerate(nets.networks):
        if net is None:
            continue
        for k, layer in enumerate(net.layers):
            for attr in ("w", "b", "idt"):
                if getattr(layer, attr) is not None:
                    yield f"{prefix}.{index}.layer_{k}.{attr}", layer, attr, layer.trainable


class DescrptSeR(dp_descriptor.DescrptSeR, Parameters):
    """Runs dpmodel ``DescrptSeR`` as a ``tf.Module``; accepts ``type_one_side = false``."""

    backend = "tf"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._start_module("descriptor")
        super().__init__(*args, **kwargs)
        self.adopt()

    @classmethod
    def deserialize(cls, data: dict) -> "DescrptSeR":
        """Build from a dict; nets stored for excluded two-side pairs are kept for ``serialize`` only.

        TensorFlow gives an excluded (centre, neighbour) block exactly zero whatever net
        is stored (DeePMD-kit stores zeroed ones; with e.g. softplus they would not be zero).
        """
        obj = super().deserialize(data)
        obj.excluded_nets = {}
        if not obj.type_one_side:
            for index, net in enumerate(obj.embeddings.networks):
                if net is not None and obj.is_excluded(index % obj.ntypes, index // obj.ntypes):
                    obj.excluded_nets[index] = net.serialize()
                    obj.embeddings.networks[index] = None
        obj.adopt()
        return obj

    def serialize(self) -> dict:
        data = super().serialize()
        for index, net in getattr(self, "excluded_nets", {}).items():
            data["embeddings"]["networks"][index] = copy.deepcopy(net)
        return data

    def _slots(self) -> Iterator[Slot]:
        yield from _net_slots("embeddings", self.embeddings)
        yield "davg", self, "davg", False
        yield "dstd", self, "dstd", False


class TypeEmbedNet(Parameters):
    """TensorFlow-only type embedding (SPEC 7): ``T = EmbeddingNet(onehot(type))``.

    Parameters follow DeePMD-kit's TF ``TypeEmbedNet``; ``use_econf_tebd`` (the
    electronic-configuration input) is refused.
    """

    def __init__(self, ntypes: int, neuron: list[int] = [8], resnet_dt: bool = False,
                 activation_function: str = "tanh", precision: str = "default", trainable: bool = True,
                 seed: Any = None, padding: bool = False, use_econf_tebd: bool = False,
                 use_tebd_bias: bool = False, type_map: list[str] | None = None,
                 embedding: EmbeddingNet | None = None) -> None:
        self._start_module("type_embedding")
        if use_econf_tebd:
            raise ConfigError("model/type_embedding/use_econf_tebd = true is not supported; set it to false "
                              "(one-hot type input)")
        self.ntypes, self.neuron = int(ntypes), [int(n) for n in neuron]
        self.resnet_dt, self.trainable, self.padding = bool(resnet_dt), bool(trainable), bool(padding)
        self.activation_function = canonical_activation(activation_function, "model/type_embedding/activation_function")
        self.precision = canonical_precision(precision, "model/type_embedding/precision")
        self.use_econf_tebd, self.use_tebd_bias, self.type_map = False, bool(use_tebd_bias), type_map
        self.embedding = embedding if embedding is not None else EmbeddingNet(
            self.ntypes, self.neuron, self.activation_function, self.resnet_dt, self.precision, seed,
            bias=self.use_tebd_bias, trainable=self.trainable)
        if self.embedding.in_dim != self.ntypes:
            raise ConfigError(f"model/type_embedding: embedding in_dim {self.embedding.in_dim} != ntypes {self.ntypes}")
        self.adopt()

    @property
    def dim_out(self) -> int:
        return self.neuron[-1]

    def _slots(self) -> Iterator[Slot]:
        for k, layer in enumerate(self.embedding.layers):
            for attr in ("w", "b", "idt"):
                if getattr(layer, attr) is not None:
                    yield f"embedding.layer_{k}.{attr}", layer, attr, layer.trainable

    def call(self) -> Array:
        """Embedding of every type, shape (ntypes, M), or (ntypes + 1, M) with ``padding`` (zero last row)."""
        xp = array_namespace(self.embedding.layers[0].w)
        dtype = getattr(xp, self.precision)
        table = self.embedding.call(xp.eye(self.ntypes, dtype=dtype))
        if self.padding:
            table = xp.concat([table, xp.zeros((1, self.dim_out), dtype=dtype)], axis=0)
        return table

    def serialize(self) -> dict:
        """The SPEC 7.2 ``TypeEmbedNet`` dict (``@version`` 2)."""
        return {
            "@class": "TypeEmbedNet",
            "@version": 2,
            "ntypes": self.ntypes,
            "neuron": list(self.neuron),
            "resnet_dt": self.resnet_dt,
            "precision": self.precision,
            "activation_function": self.activation_function,
            "trainable": self.trainable,
            "padding": self.padding,
            "use_econf_tebd": self.use_econf_tebd,
            "use_tebd_bias": self.use_tebd_bias,
            "type_map": self.type_map,
            "embedding": self.embedding.serialize(),
        }

    @classmethod
    def deserialize(cls, data: dict) -> "TypeEmbedNet":
        """Build from a SPEC 7.2 dict; a dict without ``use_tebd_bias`` reads as ``True`` (DeePMD-kit)."""
        data = dict(data)
        check_class(data, "TypeEmbedNet")
        check_version(data, "TypeEmbedNet", 2)
        data.setdefault("use_tebd_bias", True)
        embedding = EmbeddingNet.deserialize(data.pop("embedding"))
        return cls(embedding=embedding, **data)


class EnergyFitting(dp_fitting.EnergyFitting, Parameters):
    """Runs dpmodel ``EnergyFitting`` as a ``tf.Module``.

    With a model-level type embedding the input is ``[D_i, T(t_i)]`` (``dim_descrpt``
    counts both) and the fitting is ``mixed_types`` (one shared net).
    """

    type_embedding: TypeEmbedNet | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._start_module("fitting")
        super().__init__(*args, **kwargs)
        self.adopt()

    @classmethod
    def deserialize(cls, data: dict) -> "EnergyFitting":
        obj = super().deserialize(data)
        obj.adopt()
        return obj

    def _slots(self) -> Iterator[Slot]:
        yield from _net_slots("nets", self.nets)
        yield "bias_atom_e", self, "bias_atom_e", False
        for key in dp_fitting._STAT_KEYS:
            if getattr(self, key) is not None:
                yield key, self, key, False

    def call(self, descriptor: Array, atype: Array, fparam: Array | None = None, aparam: Array | None = None,
             need_grad: bool = False, split_types: bool = False, type_blocks: Sequence[int] | None = None):
        if self.type_embedding is not None:
            if need_grad:
                raise ValueError("analytic descriptor gradients are not available with a type embedding")
            xp = array_namespace(descriptor, atype)
            nf, nloc = atype.shape[0], atype.shape[1]
            table = self.type_embedding.call()
            tebd = xp.reshape(xp.take(table, xp.reshape(atype, (-1,)), axis=0), (nf, nloc, self.type_embedding.dim_out))
            descriptor = xp.concat([descriptor, xp.astype(tebd, descriptor.dtype)], axis=-1)
        return super().call(descriptor, atype, fparam, aparam, need_grad, split_types, type_blocks)


class EnergyModel(dp_model.EnergyModel, Parameters):
    """Runs dpmodel ``EnergyModel`` as a ``tf.Module``, optionally with a :class:`TypeEmbedNet`.

    Forces and virials come from :mod:`backends.tf.model` (``tf.GradientTape``).
    """

    descriptor_class = DescrptSeR
    fitting_class = EnergyFitting

    def __init__(self, descriptor: DescrptSeR, fitting: EnergyFitting, type_map: list[str],
                 atom_exclude_types: list[int] = [], pair_exclude_types: list[list[int]] = [],
                 rcond: float | None = None, preset_out_bias: Any = None,
                 type_embedding: TypeEmbedNet | dict | None = None) -> None:
        self._start_module("energy_model")
        super().__init__(descriptor, fitting, type_map, atom_exclude_types, pair_exclude_types, rcond,
                         preset_out_bias)
        if isinstance(type_embedding, dict):
            type_embedding = TypeEmbedNet.deserialize(type_embedding)
        self.type_embedding = type_embedding
        fitting.type_embedding = type_embedding
        self._check_widths()
        self.adopt()

    def _check_widths(self) -> None:
        tebd = 0 if self.type_embedding is None else self.type_embedding.dim_out
        expected = self.descriptor.dim_out + tebd
        if self.fitting.dim_descrpt != expected:
            what = f"descriptor width {self.descriptor.dim_out}" + (f" + type embedding width {tebd}" if tebd else "")
            raise ConfigError(f"model/fitting dim_descrpt = {self.fitting.dim_descrpt} does not match the {what}")
        if self.type_embedding is not None and not self.fitting.mixed_types:
            raise ConfigError("model/fitting mixed_types = false with a model-level type_embedding; "
                              "the type-embedding fitting is one shared net (mixed_types = true)")

    @classmethod
    def deserialize(cls, data: dict) -> "EnergyModel":
        obj = super().deserialize(data)
        obj.adopt()
        return obj

    def serialize(self) -> dict:
        """dpmodel's model dict, plus ``type_embedding`` (SPEC 7.2) when the model has one."""
        data = super().serialize()
        if self.type_embedding is not None:
            data["type_embedding"] = self.type_embedding.serialize()
        return data

    def _slots(self) -> Iterator[Slot]:
        yield "out_bias", self, "out_bias", False
        yield "out_std", self, "out_std", False

    def _children(self) -> list[Parameters]:
        children = [self.descriptor, self.fitting]
        return children if self.type_embedding is None else [*children, self.type_embedding]


def new_type_embedding(config: dict, ntypes: int, type_map: list[str] | None = None) -> TypeEmbedNet:
    """A freshly initialised :class:`TypeEmbedNet` from the ``model/type_embedding`` input section."""
    keys = {"neuron", "resnet_dt", "activation_function", "precision", "trainable", "seed", "padding",
            "use_econf_tebd", "use_tebd_bias"}
    return TypeEmbedNet(ntypes=ntypes, type_map=type_map, **{k: v for k, v in config.items() if k in keys})


def model_from_dict(data: dict) -> EnergyModel:
    """A TensorFlow :class:`EnergyModel` from a serialized model dict (refusals from :mod:`dpmodel.capabilities`)."""
    from dpmodel.model_factory import model_from_dict as build

    return build(data, EnergyModel)
