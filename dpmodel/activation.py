"""Activation functions with their first and second derivatives.

Each entry maps ``(x, order)`` to ``(phi(x), phi'(x), ...)`` up to derivative ``order``
(0, 1 or 2); the derivatives feed the analytic forces and the tabulation of
embedding nets. Names are case-insensitive
and follow DeePMD-kit (``gelu`` and ``gelu_tf`` are the same tanh approximation).
"""

from __future__ import annotations

import math
from typing import Callable

from dpmodel.errors import ConfigError
from dpmodel.xp import Array, array_namespace

Derivatives = tuple[Array, Array, Array]

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def _tanh(x: Array, order: int = 2) -> tuple[Array, ...]:
    """tanh and its derivatives up to ``order``; the hot path of every default net."""
    t = array_namespace(x).tanh(x)
    if order == 0:
        return (t,)
    d = 1.0 - t * t
    return (t, d) if order == 1 else (t, d, -2.0 * t * d)


def _relu(x: Array) -> Derivatives:
    xp = array_namespace(x)
    pos = xp.astype(x > 0.0, x.dtype)
    return x * pos, pos, xp.zeros_like(x)


def _relu6(x: Array) -> Derivatives:
    xp = array_namespace(x)
    inside = xp.astype((x > 0.0) & (x < 6.0), x.dtype)
    return xp.clip(x, 0.0, 6.0), inside, xp.zeros_like(x)


def _sigmoid(x: Array) -> Derivatives:
    xp = array_namespace(x)
    sig = 1.0 / (1.0 + xp.exp(-x))
    d = sig * (1.0 - sig)
    return sig, d, d * (1.0 - 2.0 * sig)


def _softplus(x: Array) -> Derivatives:
    xp = array_namespace(x)
    value = xp.log1p(xp.exp(-xp.abs(x))) + xp.where(x > 0.0, x, xp.zeros_like(x))
    sig, d, _ = _sigmoid(x)
    return value, sig, d


def _silu(x: Array) -> Derivatives:
    sig, d, d2 = _sigmoid(x)
    return x * sig, sig + x * d, 2.0 * d + x * d2


def _gelu(x: Array) -> Derivatives:
    t = array_namespace(x).tanh(_GELU_C * (x + _GELU_A * x**3))
    du = _GELU_C * (1.0 + 3.0 * _GELU_A * x * x)
    d2u = _GELU_C * 6.0 * _GELU_A * x
    sech2 = 1.0 - t * t
    value = 0.5 * x * (1.0 + t)
    d = 0.5 * (1.0 + t) + 0.5 * x * sech2 * du
    d2 = sech2 * du + 0.5 * x * (-2.0 * t * sech2 * du * du + sech2 * d2u)
    return value, d, d2


def _linear(x: Array) -> Derivatives:
    xp = array_namespace(x)
    return x, xp.ones_like(x), xp.zeros_like(x)


def _value_only(x: Array, name: str) -> Array | None:
    xp = array_namespace(x)
    if name == "tanh":
        return xp.tanh(x)
    if name in ("linear", "none"):
        return x
    if name == "gelu" or name == "gelu_tf":
        return 0.5 * x * (1.0 + xp.tanh(_GELU_C * (x + _GELU_A * x**3)))
    return None


ACTIVATIONS: dict[str, Callable[[Array], Derivatives]] = {
    "tanh": _tanh,
    "relu": _relu,
    "relu6": _relu6,
    "softplus": _softplus,
    "sigmoid": _sigmoid,
    "gelu": _gelu,
    "gelu_tf": _gelu,
    "silu": _silu,
    "linear": _linear,
    "none": _linear,
}


def canonical_activation(name: str | None, key: str = "activation_function") -> str:
    """Lower-case activation name (``None`` becomes ``"none"``), validated."""
    canonical = "none" if name is None else str(name).lower()
    if canonical not in ACTIVATIONS:
        known = ", ".join(ACTIVATIONS)
        raise ConfigError(f"{key} = {name!r} is not a known activation; expected one of: {known}")
    return canonical


def apply_activation(name: str, x: Array, order: int = 0) -> tuple[Array, ...]:
    """``(phi(x), phi'(x), ...)`` of activation ``name`` up to derivative ``order``.

    Parameters
    ----------
    name : canonical activation name (see :func:`canonical_activation`)
    x : Array, any shape
    order : 0, 1 or 2
    """
    if name == "tanh":
        return _tanh(x, order)
    if order == 0:
        value = _value_only(x, name)
        if value is not None:
            return (value,)
    return ACTIVATIONS[name](x)[: order + 1]
