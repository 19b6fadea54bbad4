"""The array type of the TensorFlow array-API namespace: :class:`TFArray` and its conversions.

:class:`TFArray` is a thin wrapper of a ``tf.Tensor`` whose ``shape`` holds an ``int``
for every static dimension and a scalar int64 ``TFArray`` for every dimension only
known at run time, so dpmodel's shape arithmetic (``nf * nloc``) builds graph ops
inside a ``tf.function`` traced with ``None`` dimensions, and one trace serves every
system size. Its binary operators promote dtypes of one kind (``int32`` with
``int64``, ``float32`` with ``float64``) as the array API does; TensorFlow alone
would refuse. Values keep the units of whatever they wrap.

Also here: :func:`is_tf_array` and :func:`unwrap`, and the private conversions the
namespace functions of :mod:`backends.tf.xp` build on (``_tensor``: anything to a
``tf.Tensor``; ``_promote``: two operands to one dtype; ``_shape``: a shape with
dynamic dims to what TF ops take; ``_out``: a tensor back to a ``TFArray``). This
module does not import :mod:`backends.tf.xp`; :func:`backends.tf.xp.wrap` is the
entry point that also registers the namespace.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["TFArray", "is_tf_array", "unwrap"]


class TFArray:
    """A ``tf.Tensor`` seen through the array API (operators, ``shape``, indexing).

    Attributes
    ----------
    t : the wrapped ``tf.Tensor``
    """

    __slots__ = ("t", "_shape")
    __array_priority__ = 100

    def __init__(self, tensor: Any) -> None:
        self.t = tensor
        self._shape = None

    # ---------------------------------------------------------------- attributes
    @property
    def shape(self) -> tuple:
        """Static dims as ``int``; dims known only at run time as scalar int64 ``TFArray``."""
        if self._shape is None:
            static = self.t.shape.as_list()
            if builtins.all(d is not None for d in static):
                self._shape = tuple(static)
            else:
                dynamic = tf.shape(self.t, out_type=tf.int64)
                self._shape = tuple(d if d is not None else TFArray(dynamic[i]) for i, d in enumerate(static))
        return self._shape

    @property
    def dtype(self) -> tf.DType:
        return self.t.dtype

    @property
    def ndim(self) -> int:
        return self.t.shape.rank

    @property
    def device(self) -> str:
        return getattr(self.t, "device", "")

    @property
    def mT(self) -> "TFArray":  # noqa: N802 - array-API name
        return TFArray(tf.linalg.matrix_transpose(self.t))

    # ---------------------------------------------------------------- conversion
    def numpy(self) -> np.ndarray:
        return self.t.numpy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.asarray(self.t.numpy())
        return out if dtype is None else out.astype(dtype)

    def __bool__(self) -> bool:
        return builtins.bool(self.t.numpy())

    def __int__(self) -> int:
        return int(self.t.numpy())

    def __index__(self) -> int:
        return int(self.t.numpy())

    def __float__(self) -> float:
        return float(self.t.numpy())

    def __len__(self) -> int:
        first = self.shape[0]
        if isinstance(first, TFArray):
            raise TypeError("len() of a TFArray whose first dimension is only known at run time")
        return first

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"TFArray({self.t!r})"

    # ---------------------------------------------------------------- indexing
    def __getitem__(self, key: Any) -> "TFArray":
        return TFArray(self.t[_unwrap_key(key)])

    # ---------------------------------------------------------------- operators
    def __neg__(self) -> "TFArray":
        return TFArray(-self.t)

    def __pos__(self) -> "TFArray":
        return self

    def __abs__(self) -> "TFArray":
        return TFArray(tf.abs(self.t))

    def __invert__(self) -> "TFArray":
        if self.t.dtype == tf.bool:
            return TFArray(tf.logical_not(self.t))
        return TFArray(tf.bitwise.invert(self.t))


def _binary(op):
    def forward(self, other):
        a, b = _promote(self.t, other)
        return TFArray(op(a, b))

    def reverse(self, other):
        b, a = _promote(self.t, other)
        return TFArray(op(a, b))

    return forward, reverse


def _logical(logic, bitwise):
    def op(a, b):
        return logic(a, b) if a.dtype == tf.bool else bitwise(a, b)

    return op


def _matmul(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Matrix product of two tensors of one dtype; a stack of rows times one matrix is one 2-D product."""
    if a.shape.rank > 2 and b.shape.rank == 2:
        inner = a.shape[-1] if a.shape[-1] is not None else tf.shape(a)[-1]
        flat = tf.matmul(tf.reshape(a, [-1, inner]), b)
        out = tf.reshape(flat, tf.concat([tf.shape(a)[:-1], tf.shape(b)[-1:]], 0))
        out.set_shape(a.shape[:-1].concatenate(b.shape[-1:]))
        return out
    return tf.linalg.matmul(a, b)


_OPERATORS = {
    "add": tf.add,
    "sub": tf.subtract,
    "mul": tf.multiply,
    "truediv": tf.truediv,
    "floordiv": tf.math.floordiv,
    "mod": tf.math.floormod,
    "pow": tf.pow,
    "matmul": _matmul,
    "and": _logical(tf.logical_and, tf.bitwise.bitwise_and),
    "or": _logical(tf.logical_or, tf.bitwise.bitwise_or),
    "xor": _logical(tf.math.logical_xor, tf.bitwise.bitwise_xor),
}
for _name, _op in _OPERATORS.items():
    _fwd, _rev = _binary(_op)
    setattr(TFArray, f"__{_name}__", _fwd)
    setattr(TFArray, f"__r{_name}__", _rev)
for _name, _op in {"eq": tf.equal, "ne": tf.not_equal, "lt": tf.less, "le": tf.less_equal,
                   "gt": tf.greater, "ge": tf.greater_equal}.items():
    setattr(TFArray, f"__{_name}__", _binary(_op)[0])
TFArray.__hash__ = None  # type: ignore[assignment]


# -------------------------------------------------------------------- helpers
def is_tf_array(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`TFArray`, a ``tf.Tensor`` or a ``tf.Variable``."""
    return isinstance(obj, (TFArray, tf.Variable)) or tf.is_tensor(obj)


def unwrap(obj: Any) -> Any:
    """The ``tf.Tensor`` inside a :class:`TFArray`; anything else unchanged."""
    return obj.t if isinstance(obj, TFArray) else obj


def _unwrap_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_unwrap_key(k) for k in key)
    if isinstance(key, slice):
        return slice(unwrap(key.start), unwrap(key.stop), unwrap(key.step))
    return unwrap(key)


def _tensor(obj: Any, dtype: Any = None) -> tf.Tensor:
    obj = unwrap(obj)
    if isinstance(obj, tf.Variable):
        obj = tf.convert_to_tensor(obj)
    if tf.is_tensor(obj):
        return obj if dtype is None or obj.dtype == dtype else tf.cast(obj, dtype)
    array = np.asarray(obj)
    if dtype is None and array.dtype.kind == "f" and not isinstance(obj, np.ndarray):
        dtype = tf.float64
    return tf.constant(array, dtype=dtype)


def _promote(a: tf.Tensor, other: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """``a`` and ``other`` as tensors of one dtype (Python scalars take ``a``'s dtype)."""
    other = unwrap(other)
    if isinstance(other, (int, float, np.generic, builtins.bool)) and not tf.is_tensor(other):
        if isinstance(other, (float, np.floating)) and not a.dtype.is_floating:
            a = tf.cast(a, tf.float64)
        elif a.dtype == tf.bool and not isinstance(other, builtins.bool):
            return a, tf.constant(other)
        return a, tf.constant(other, dtype=a.dtype)
    b = _tensor(other)
    if a.dtype != b.dtype:
        dtype = tf.as_dtype(np.result_type(a.dtype.as_numpy_dtype, b.dtype.as_numpy_dtype))
        a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    return a, b


def _shape(shape: Any) -> Any:
    """A shape for TF ops: a list of ints, or an int64 tensor when a dim is dynamic."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, builtins.bool):
        shape = (shape,)
    if isinstance(shape, TFArray):
        return tf.cast(shape.t, tf.int64)
    dims = list(shape)
    if builtins.all(isinstance(d, (int, np.integer)) for d in dims):
        return [int(d) for d in dims]
    return tf.stack([tf.cast(unwrap(d), tf.int64) if not isinstance(d, (int, np.integer))
                     else tf.constant(int(d), tf.int64) for d in dims])


def _out(tensor: tf.Tensor) -> TFArray:
    return TFArray(tensor)
