"""Small builders shared by the section schemas."""

from __future__ import annotations

from typing import Any

from dargs import Argument

__all__ = ["activation", "opt", "precision", "seed"]

PRECISIONS = (
    "default",
    "float16",
    "half",
    "float32",
    "single",
    "float64",
    "double",
    "bfloat16",
)


def opt(name: str, dtype: Any, default: Any, doc: str, **kwargs: Any) -> Argument:
    """Return an optional ``Argument`` with a default value.

    Parameters
    ----------
    name : str
        The key.
    dtype : type or list of type
        Accepted value types (``None`` allows null).
    default : Any
        Value filled in by normalization.
    doc : str
        One-line documentation.
    **kwargs : Any
        Passed to ``dargs.Argument`` (``alias``, ``extra_check``, ...).

    Returns
    -------
    dargs.Argument
        The argument.
    """
    return Argument(name, dtype, optional=True, default=default, doc=doc, **kwargs)


def precision() -> Argument:
    """The ``precision`` key of a network."""
    return opt(
        "precision",
        str,
        "default",
        "Precision of the network parameters ('default' = float64).",
        extra_check=lambda value: value in PRECISIONS,
        extra_check_errmsg=f"expected one of {list(PRECISIONS)}",
    )


def activation() -> Argument:
    """The ``activation_function`` key of a network (SPEC 3.2)."""
    return opt(
        "activation_function",
        str,
        "tanh",
        "Activation of hidden layers: tanh, relu, relu6, softplus, sigmoid, gelu, "
        "gelu_tf, silu, linear or none (case-insensitive).",
    )


def seed() -> Argument:
    """The ``seed`` key of a network initialiser."""
    return opt("seed", [int, None], None, "Random seed of parameter initialisation.")
