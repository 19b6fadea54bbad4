"""Multilayer perceptrons of DeePMD-kit: layers, embedding and fitting nets.

A layer computes ``y = phi(x @ w + b)``, times the timestep ``idt`` when present,
plus a skip connection ``x`` (or ``concat([x, x])``) when ``resnet`` and the widths
allow it. Besides the forward pass, stacks of layers provide the forward-mode
derivatives of a scalar-input net (embedding nets) and the reverse-mode input
gradient (fitting nets), which the analytic forces and the tabulation use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dpmodel.activation import apply_activation, canonical_activation
from dpmodel.net_sums import summed_columns, summed_rows
from dpmodel.precision import canonical_precision, numpy_dtype
from dpmodel.serialization import check_class, check_version
from dpmodel.xp import Array, array_namespace, as_array, features_first


def matmul_2d(xp, x: Array, w: Array) -> Array:
    """``x @ w`` for ``x`` of shape (..., n) and ``w`` (n, m), as one 2-D product.

    With ``n == 1`` (an embedding net's first layer) it is the outer product, the same
    numbers by broadcasting, which skips a matrix product of inner size 1 and its gradients.
    """
    if x.shape[-1] == 1:
        return x * w[0, :]
    lead = tuple(x.shape[:-1])
    out = xp.matmul(xp.reshape(x, (-1, x.shape[-1])), w)
    return xp.reshape(out, (*lead, w.shape[-1]))


def child_seed(seed: int | list[int] | None, index: int) -> list[int] | None:
    """DeePMD's derived seed for sub-object ``index``: ``None``, ``[index, s]`` or ``[index, *s]``."""
    if seed is None:
        return None
    return [index, seed] if isinstance(seed, int) else [index, *seed]


@dataclass
class Layer:
    """One affine layer with activation, optional timestep and skip connection.

    Attributes
    ----------
    w : shape (num_in, num_out)
    b : shape (num_out,) or None
    idt : shape (num_out,) or None; the timestep, present only with a skip connection.
    """

    w: Array
    b: Array | None
    idt: Array | None
    activation_function: str = "tanh"
    resnet: bool = False
    precision: str = "float64"
    trainable: bool = True

    @classmethod
    def create(
        cls,
        num_in: int,
        num_out: int,
        bias: bool = True,
        use_timestep: bool = False,
        activation_function: str | None = "tanh",
        resnet: bool = False,
        precision: str = "float64",
        seed: int | list[int] | None = None,
        trainable: bool = True,
    ) -> "Layer":
        """Initialise like DeePMD-kit: ``w ~ N(0, 1/sqrt(in+out))``, ``b ~ N(0, 1)``, ``idt ~ N(0.1, 0.001)``."""
        dtype = numpy_dtype(precision)
        rng = np.random.default_rng(seed)
        w = rng.normal(size=(num_in, num_out), scale=1.0 / np.sqrt(num_in + num_out)).astype(dtype)
        b = rng.normal(size=(num_out,)).astype(dtype) if bias else None
        use_timestep = use_timestep and (num_out == num_in or num_out == 2 * num_in)
        idt = rng.normal(loc=0.1, scale=0.001, size=(num_out,)).astype(dtype) if use_timestep else None
        return cls(w, b, idt, canonical_activation(activation_function), resnet, canonical_precision(precision), trainable)

    @property
    def num_in(self) -> int:
        return int(self.w.shape[0])

    @property
    def num_out(self) -> int:
        return int(self.w.shape[1])

    @property
    def has_skip(self) -> bool:
        """Whether the layer adds ``x`` (out = in) or ``concat([x, x])`` (out = 2 in)."""
        return self.resnet and self.num_out in (self.num_in, 2 * self.num_in)

    def skip(self, x: Array, axis: int = -1) -> Array | None:
        """The skip-connection term for input ``x`` (features on ``axis``), or ``None`` without one."""
        if not self.resnet:
            return None
        if self.num_out == self.num_in:
            return x
        if self.num_out == 2 * self.num_in:  # the concatenation beat a broadcast over a (2, num_in) split, measured
            return array_namespace(x).concat([x, x], axis=axis)
        return None

    def add_skip(self, y: Array, x: Array, axis: int = -1) -> Array:
        """``y`` plus the skip-connection term of input ``x`` (``y`` itself without one); features on ``axis``."""
        term = self.skip(x, axis)
        return y if term is None else y + term

    def linear(self, x: Array) -> Array:
        """Pre-activation ``x @ w + b``; ``x`` of shape (..., num_in)."""
        xp = array_namespace(x)
        z = matmul_2d(xp, x, as_array(xp, self.w, x))
        return z if self.b is None else z + as_array(xp, self.b, x)

    def scale(self, y: Array) -> Array:
        """Multiply by the timestep when present."""
        return y if self.idt is None else y * as_array(array_namespace(y), self.idt, y)

    def call(self, x: Array) -> Array:
        """Forward pass, ``x`` of shape (..., num_in) to (..., num_out)."""
        (y,) = apply_activation(self.activation_function, self.linear(x))
        return self.add_skip(self.scale(y), x)

    def serialize(self) -> dict:
        return {
            "@class": "Layer",
            "@version": 2,
            "bias": self.b is not None,
            "use_timestep": self.idt is not None,
            "activation_function": self.activation_function,
            "resnet": self.resnet,
            "precision": self.precision,
            "trainable": self.trainable,
            "@variables": {"w": _np(self.w), "b": _np(self.b), "idt": _np(self.idt)},
        }

    @classmethod
    def deserialize(cls, data: dict) -> "Layer":
        data = dict(data)
        check_class(data, "Layer")
        check_version(data, "Layer", 2)
        variables = data.pop("@variables")
        dtype = numpy_dtype(data.get("precision", "float64"))
        w = np.asarray(variables["w"], dtype=dtype)
        b = None if variables.get("b") is None else np.asarray(variables["b"], dtype=dtype).reshape(-1)
        idt = None if variables.get("idt") is None else np.asarray(variables["idt"], dtype=dtype).reshape(-1)
        return cls(
            w, b, idt,
            canonical_activation(data.get("activation_function", "tanh")),
            bool(data.get("resnet", False)),
            canonical_precision(data.get("precision", "float64")),
            bool(data.get("trainable", True)),
        )


def _np(array: Array | None) -> np.ndarray | None:
    from dpmodel.xp import to_numpy

    return None if array is None else np.array(to_numpy(array), copy=True)


class LayerStack:
    """A sequence of :class:`Layer` with the passes shared by both net kinds."""

    layers: list[Layer]

    def call(self, x: Array) -> Array:
        """Forward pass through every layer."""
        for layer in self.layers:
            x = layer.call(x)
        return x

    def call_summed(self, x: Array) -> Array:
        """The output summed over the last axis of scalar inputs ``x`` (..., width): (..., num_out).

        :mod:`dpmodel.net_sums`: features first in namespaces registered by
        :func:`dpmodel.xp.register_features_first`, rows elsewhere; the last skip term added once.
        """
        xp = array_namespace(x)
        if not self.layers:
            return xp.sum(x, axis=-1)[..., None]
        return (summed_columns if features_first(xp) else summed_rows)(self.layers, x)

    def call_with_derivatives(self, x: Array, order: int = 1) -> tuple[Array, ...]:
        """Value and derivatives w.r.t. a scalar input, by forward-mode propagation.

        Parameters
        ----------
        x : shape (..., 1); the net's scalar input.
        order : 1 or 2.

        Returns
        -------
        ``(y, dy/dx)`` or ``(y, dy/dx, d2y/dx2)``, each of shape (..., num_out).
        """
        xp = array_namespace(x)
        tangents = [x, xp.ones_like(x), xp.zeros_like(x)][: order + 1]
        for layer in self.layers:
            z = layer.linear(tangents[0])
            w = as_array(xp, layer.w, x)
            if tangents[0] is x and layer.num_in == 1:  # d(x w)/dx = w, d2(x w)/dx2 = 0
                dz = [xp.broadcast_to(w[0, :], z.shape), xp.zeros_like(z)][:order]
            else:
                dz = [matmul_2d(xp, t, w) for t in tangents[1:]]
            phi = apply_activation(layer.activation_function, z, order)
            out = [phi[0], phi[1] * dz[0]]
            if order == 2:
                out.append(phi[2] * dz[0] * dz[0] + phi[1] * dz[1])
            tangents = [layer.add_skip(layer.scale(o), t) for o, t in zip(out, tangents)]
        return tuple(tangents)

    def call_with_input_grad(self, x: Array, grad_out: Array) -> tuple[Array, Array]:
        """Forward pass and the vector-Jacobian product with respect to the input.

        Parameters
        ----------
        x : shape (..., num_in)
        grad_out : shape (..., num_out) or broadcastable; the cotangent of the output.

        Returns
        -------
        y : shape (..., num_out)
        grad_in : shape (..., num_in); ``grad_out`` pulled back to ``x``.
        """
        xp = array_namespace(x)
        saved = []
        for layer in self.layers:
            z = layer.linear(x)
            value, slope = apply_activation(layer.activation_function, z, 1)
            saved.append((layer, x, slope))
            x = layer.add_skip(layer.scale(value), x)
        y, grad = x, grad_out
        for layer, _, slope in reversed(saved):
            w = as_array(xp, layer.w, grad)
            grad_in = matmul_2d(xp, layer.scale(grad) * slope, xp.matrix_transpose(w))
            if layer.has_skip:
                n = layer.num_in
                grad_in = grad_in + (grad if layer.num_out == n else grad[..., :n] + grad[..., n:])
            grad = grad_in
        return y, grad


class EmbeddingNet(LayerStack):
    """Stack ``in_dim -> neuron[0] -> ... -> neuron[-1]``, activation and skip on every layer."""

    def __init__(self, in_dim: int, neuron: list[int], activation_function: str = "tanh", resnet_dt: bool = False,
                 precision: str = "float64", seed: Any = None, bias: bool = True, trainable: bool = True,
                 layers: list[Layer] | None = None) -> None:
        self.in_dim = in_dim
        self.neuron = list(neuron)
        self.activation_function = canonical_activation(activation_function)
        self.resnet_dt = resnet_dt
        self.precision = canonical_precision(precision)
        self.bias = bias
        widths = [in_dim, *self.neuron]
        self.layers = layers if layers is not None else [
            Layer.create(widths[k], widths[k + 1], bias, resnet_dt, activation_function, True, precision,
                         child_seed(seed, k), trainable)
            for k in range(len(self.neuron))
        ]

    def serialize(self) -> dict:
        return {
            "@class": "EmbeddingNetwork",
            "@version": 2,
            "in_dim": self.in_dim,
            "neuron": list(self.neuron),
            "activation_function": self.activation_function,
            "resnet_dt": self.resnet_dt,
            "bias": self.bias,
            "precision": self.precision,
            "layers": [layer.serialize() for layer in self.layers],
        }

    @classmethod
    def deserialize(cls, data: dict) -> "EmbeddingNet":
        data = dict(data)
        check_class(data, "EmbeddingNetwork")
        check_version(data, "EmbeddingNetwork", 2)
        layers = [Layer.deserialize(layer) for layer in data.pop("layers")]
        return cls(layers=layers, **data)


class FittingNet(LayerStack):
    """Hidden stack like :class:`EmbeddingNet`, then a linear output layer."""

    def __init__(self, in_dim: int, out_dim: int, neuron: list[int], activation_function: str = "tanh",
                 resnet_dt: bool = False, precision: str = "float64", bias_out: bool = True, seed: Any = None,
                 trainable: bool | list[bool] = True, layers: list[Layer] | None = None) -> None:
        self.in_dim, self.out_dim = in_dim, out_dim
        self.neuron = list(neuron)
        self.activation_function = canonical_activation(activation_function)
        self.resnet_dt = resnet_dt
        self.precision = canonical_precision(precision)
        self.bias_out = bias_out
        if layers is None:
            flags = trainable if isinstance(trainable, list) else [trainable] * (len(self.neuron) + 1)
            widths = [in_dim, *self.neuron]
            layers = [
                Layer.create(widths[k], widths[k + 1], True, resnet_dt, activation_function, True, precision,
                             child_seed(seed, k), flags[k])
                for k in range(len(self.neuron))
            ]
            layers.append(Layer.create(widths[-1], out_dim, bias_out, False, None, False, precision,
                                       child_seed(seed, len(self.neuron)), flags[-1]))
        self.layers = layers

    def serialize(self) -> dict:
        return {
            "@class": "FittingNetwork",
            "@version": 1,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "neuron": list(self.neuron),
            "activation_function": self.activation_function,
            "resnet_dt": self.resnet_dt,
            "precision": self.precision,
            "bias_out": self.bias_out,
            "layers": [layer.serialize() for layer in self.layers],
        }

    @classmethod
    def deserialize(cls, data: dict) -> "FittingNet":
        data = dict(data)
        check_class(data, "FittingNetwork")
        check_version(data, "FittingNetwork", 1)
        layers = [Layer.deserialize(layer) for layer in data.pop("layers")]
        return cls(layers=layers, **data)


_NETWORK_CLASSES = {"embedding_network": EmbeddingNet, "fitting_network": FittingNet}


class NetworkCollection:
    """``ntypes**ndim`` networks indexed by type tuples; flat index ``sum(t_k * ntypes**k)``."""

    def __init__(self, ndim: int, ntypes: int, network_type: str, networks: list | None = None) -> None:
        if network_type not in _NETWORK_CLASSES:
            raise ValueError(f"NetworkCollection network_type = {network_type!r}; expected one of {sorted(_NETWORK_CLASSES)}")
        self.ndim, self.ntypes, self.network_type = ndim, ntypes, network_type
        self.networks: list = list(networks) if networks is not None else [None] * ntypes**ndim
        if len(self.networks) != ntypes**ndim:
            raise ValueError(f"NetworkCollection holds {len(self.networks)} networks, expected ntypes**ndim = {ntypes**ndim}")

    def flat_index(self, key: tuple[int, ...]) -> int:
        return sum(t * self.ntypes**k for k, t in enumerate(key))

    def __getitem__(self, key: tuple[int, ...]):
        return self.networks[self.flat_index(key)]

    def __setitem__(self, key: tuple[int, ...], net) -> None:
        self.networks[self.flat_index(key)] = net

    def serialize(self) -> dict:
        return {
            "@class": "NetworkCollection",
            "@version": 1,
            "ndim": self.ndim,
            "ntypes": self.ntypes,
            "network_type": self.network_type,
            "networks": [None if net is None else net.serialize() for net in self.networks],
        }

    @classmethod
    def deserialize(cls, data: dict) -> "NetworkCollection":
        data = dict(data)
        check_class(data, "NetworkCollection")
        check_version(data, "NetworkCollection", 1)
        net_cls = _NETWORK_CLASSES[data["network_type"]]
        networks = [None if net is None else net_cls.deserialize(net) for net in data.pop("networks")]
        return cls(networks=networks, **data)
