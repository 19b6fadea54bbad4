"""An array-API namespace for TensorFlow tensors, so dpmodel's math runs on them.

``array_api_compat`` does not serve TensorFlow, so this module is the namespace
:func:`dpmodel.xp.array_namespace` returns for TF tensors (registered by
:func:`register`; :func:`wrap` registers too). It holds the namespace functions
(creation, manipulation, sorting, reductions, element-wise math, ``linalg``) and the
array-API dtype names and constants. Arrays are :class:`backends.tf.tfarray.TFArray`,
whose ``shape`` holds an ``int`` for every static dimension and a scalar int64
``TFArray`` for every dimension only known at run time, so one ``tf.function`` trace
with ``None`` dimensions serves every system size; like its operators, these functions
promote dtypes of one kind (``int32`` with ``int64``, ``float32`` with ``float64``) as
the array API does. ``TFArray``, ``is_tf_array`` and ``unwrap`` are re-exported here.

Only the subset of the standard that dpmodel uses is implemented.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from backends.tf import row_sum
from backends.tf.tfarray import (  # noqa: F401 - TFArray, is_tf_array and unwrap are re-exported
    TFArray,
    _matmul,
    _out,
    _promote,
    _shape,
    _tensor,
    is_tf_array,
    unwrap,
)

# Only the names defined here: TFArray, is_tf_array and unwrap are documented in backends.tf.tfarray.
__all__ = ["register", "wrap"]

bool = tf.bool  # noqa: A001 - array-API dtype names
int8, int16, int32, int64 = tf.int8, tf.int16, tf.int32, tf.int64
uint8 = tf.uint8
float16, bfloat16, float32, float64 = tf.float16, tf.bfloat16, tf.float32, tf.float64
newaxis = None
e, pi, inf, nan = np.e, np.pi, np.inf, np.nan


def wrap(tensor: Any) -> TFArray:
    """A :class:`TFArray` of a tensor, variable or NumPy array (registers this namespace)."""
    register()
    if isinstance(tensor, TFArray):
        return tensor
    return TFArray(tf.convert_to_tensor(tensor))


# -------------------------------------------------------------------- creation
def asarray(obj: Any, dtype: Any = None, device: Any = None, copy: Any = None) -> TFArray:
    if isinstance(obj, TFArray):
        return obj if dtype is None else astype(obj, dtype)
    return _out(_tensor(obj, dtype))


def zeros(shape: Any, dtype: Any = None, device: Any = None) -> TFArray:
    return _out(tf.zeros(_shape(shape), dtype=dtype or tf.float64))


def ones(shape: Any, dtype: Any = None, device: Any = None) -> TFArray:
    return _out(tf.ones(_shape(shape), dtype=dtype or tf.float64))


def full(shape: Any, fill_value: Any, dtype: Any = None, device: Any = None) -> TFArray:
    if dtype is None:
        dtype = tf.bool if isinstance(fill_value, builtins.bool) else (
            tf.int64 if isinstance(fill_value, (int, np.integer)) else tf.float64)
    return _out(tf.fill(_shape(shape), tf.constant(fill_value, dtype=dtype)))


def zeros_like(x: Any, dtype: Any = None, device: Any = None) -> TFArray:
    return _out(tf.zeros_like(_tensor(x), dtype=dtype))


def ones_like(x: Any, dtype: Any = None, device: Any = None) -> TFArray:
    return _out(tf.ones_like(_tensor(x), dtype=dtype))


def full_like(x: Any, fill_value: Any, dtype: Any = None, device: Any = None) -> TFArray:
    tensor = _tensor(x)
    return _out(tf.fill(tf.shape(tensor), tf.constant(fill_value, dtype=dtype or tensor.dtype)))


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None, device: Any = None) -> TFArray:
    values = [unwrap(v) for v in (start, stop, step) if v is not None]
    if dtype is None:
        floats = builtins.any(isinstance(v, float) or (tf.is_tensor(v) and v.dtype.is_floating) for v in values)
        dtype = tf.float64 if floats else tf.int64
    if stop is None:
        return _out(tf.range(tf.cast(unwrap(start), dtype), delta=tf.cast(unwrap(step), dtype), dtype=dtype))
    return _out(tf.range(tf.cast(unwrap(start), dtype), tf.cast(unwrap(stop), dtype), tf.cast(unwrap(step), dtype),
                         dtype=dtype))


def eye(n_rows: int, n_cols: int | None = None, k: int = 0, dtype: Any = None, device: Any = None) -> TFArray:
    if k != 0:
        raise ValueError("eye with k != 0 is not implemented for TensorFlow")
    return _out(tf.eye(n_rows, n_cols, dtype=dtype or tf.float64))


# -------------------------------------------------------------------- manipulation
def astype(x: Any, dtype: Any, copy: bool = True, device: Any = None) -> TFArray:
    return _out(_tensor(x, dtype))


def reshape(x: Any, shape: Any, copy: Any = None) -> TFArray:
    return _out(tf.reshape(_tensor(x), _shape(shape)))


def broadcast_to(x: Any, shape: Any) -> TFArray:
    return _out(tf.broadcast_to(_tensor(x), _shape(shape)))


def concat(arrays: Sequence[Any], axis: int | None = 0) -> TFArray:
    tensors = [_tensor(a) for a in arrays]
    if axis is None:
        return _out(tf.concat([tf.reshape(t, [-1]) for t in tensors], 0))
    return _out(tf.concat(tensors, axis))


def stack(arrays: Sequence[Any], axis: int = 0) -> TFArray:
    return _out(tf.stack([_tensor(a) for a in arrays], axis))


def expand_dims(x: Any, axis: int = 0) -> TFArray:
    return _out(tf.expand_dims(_tensor(x), axis))


def squeeze(x: Any, axis: Any) -> TFArray:
    return _out(tf.squeeze(_tensor(x), axis))


def permute_dims(x: Any, axes: Sequence[int]) -> TFArray:
    return _out(tf.transpose(_tensor(x), list(axes)))


def matrix_transpose(x: Any) -> TFArray:
    return _out(tf.linalg.matrix_transpose(_tensor(x)))


def take(x: Any, indices: Any, axis: int | None = None) -> TFArray:
    tensor = _tensor(x)
    if axis is None:
        if tensor.shape.rank != 1:
            raise ValueError("take without axis needs a one-dimensional array")
        axis = 0
    return _out(tf.gather(tensor, _tensor(indices), axis=axis))


def take_along_axis(x: Any, indices: Any, axis: int = -1) -> TFArray:
    return _out(tf.gather(_tensor(x), _tensor(indices), axis=axis, batch_dims=_rank(x) - 1))


def where(condition: Any, x1: Any, x2: Any) -> TFArray:
    cond = _tensor(condition)
    if tf.is_tensor(unwrap(x1)) or isinstance(x1, (TFArray, tf.Variable, np.ndarray)):
        a, b = _promote(_tensor(x1), x2)
    else:
        b, a = _promote(_tensor(x2), x1)
    return _out(tf.where(cond, a, b))


def _rank(x: Any) -> int:
    return _tensor(x).shape.rank


# -------------------------------------------------------------------- sorting and searching
def argsort(x: Any, axis: int = -1, descending: bool = False, stable: bool = True) -> TFArray:
    order = tf.argsort(_tensor(x), axis=axis, direction="DESCENDING" if descending else "ASCENDING", stable=True)
    return _out(tf.cast(order, tf.int64))


def sort(x: Any, axis: int = -1, descending: bool = False, stable: bool = True) -> TFArray:
    return _out(tf.sort(_tensor(x), axis=axis, direction="DESCENDING" if descending else "ASCENDING"))


def searchsorted(x1: Any, x2: Any, side: str = "left", sorter: Any = None) -> TFArray:
    if sorter is not None:
        raise ValueError("searchsorted with sorter is not implemented for TensorFlow")
    return _out(tf.searchsorted(_tensor(x1), _tensor(x2), side=side, out_type=tf.int64))


# -------------------------------------------------------------------- reductions
def _reduce(fn):
    def reduce(x: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> TFArray:
        tensor = _tensor(x, dtype)
        return _out(fn(tensor, axis=list(axis) if isinstance(axis, tuple) else axis, keepdims=keepdims))

    return reduce


sum = _reduce(tf.reduce_sum)  # noqa: A001
prod = _reduce(tf.reduce_prod)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> TFArray:  # noqa: A001
    return _out(tf.reduce_max(_tensor(x), axis=axis, keepdims=keepdims))


def min(x: Any, axis: Any = None, keepdims: bool = False) -> TFArray:  # noqa: A001
    return _out(tf.reduce_min(_tensor(x), axis=axis, keepdims=keepdims))


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> TFArray:
    return _out(tf.reduce_mean(_tensor(x), axis=axis, keepdims=keepdims))


def any(x: Any, axis: Any = None, keepdims: bool = False) -> TFArray:  # noqa: A001
    return _out(tf.reduce_any(_tensor(x, tf.bool), axis=axis, keepdims=keepdims))


def all(x: Any, axis: Any = None, keepdims: bool = False) -> TFArray:  # noqa: A001
    return _out(tf.reduce_all(_tensor(x, tf.bool), axis=axis, keepdims=keepdims))


def cumulative_sum(x: Any, axis: int | None = None, dtype: Any = None, include_initial: bool = False) -> TFArray:
    tensor = _tensor(x, dtype)
    if axis is None:
        tensor, axis = tf.reshape(tensor, [-1]), 0
    out = tf.cumsum(tensor, axis=axis)
    if include_initial:
        out = tf.concat([tf.zeros_like(tf.gather(out, [0], axis=axis)), out], axis)
    return _out(out)


# -------------------------------------------------------------------- element-wise
def _unary(fn):
    return lambda x: _out(fn(_tensor(x)))


exp, log, log1p, expm1, sqrt = _unary(tf.exp), _unary(tf.math.log), _unary(tf.math.log1p), _unary(tf.math.expm1), \
    _unary(tf.sqrt)
tanh, sin, cos, abs = _unary(tf.tanh), _unary(tf.sin), _unary(tf.cos), _unary(tf.abs)  # noqa: A001
floor, ceil, round, sign = _unary(tf.floor), _unary(tf.math.ceil), _unary(tf.round), _unary(tf.sign)  # noqa: A001
square, isnan, isfinite = _unary(tf.square), _unary(tf.math.is_nan), _unary(tf.math.is_finite)
logical_not = _unary(tf.logical_not)


def _binary_fn(fn):
    def apply(x1: Any, x2: Any) -> TFArray:
        if isinstance(x1, (TFArray, tf.Variable)) or tf.is_tensor(x1):
            a, b = _promote(_tensor(x1), x2)
        else:
            b, a = _promote(_tensor(x2), x1)
        return _out(fn(a, b))

    return apply


add, subtract, multiply, divide = _binary_fn(tf.add), _binary_fn(tf.subtract), _binary_fn(tf.multiply), \
    _binary_fn(tf.truediv)
maximum, minimum, pow = _binary_fn(tf.maximum), _binary_fn(tf.minimum), _binary_fn(tf.pow)  # noqa: A001
equal, not_equal, less, less_equal = _binary_fn(tf.equal), _binary_fn(tf.not_equal), _binary_fn(tf.less), \
    _binary_fn(tf.less_equal)
greater, greater_equal = _binary_fn(tf.greater), _binary_fn(tf.greater_equal)
logical_and, logical_or = _binary_fn(tf.logical_and), _binary_fn(tf.logical_or)


def clip(x: Any, min: Any = None, max: Any = None) -> TFArray:  # noqa: A002
    tensor = _tensor(x)
    if min is not None:
        tensor = tf.maximum(*_promote(tensor, min))
    if max is not None:
        tensor = tf.minimum(*_promote(tensor, max))
    return _out(tensor)


def matmul(x1: Any, x2: Any) -> TFArray:
    """Matrix product; a stack of rows times one matrix is one 2-D product."""
    a, b = _promote(_tensor(x1), x2)
    return _out(_matmul(a, b))


def tensordot(x1: Any, x2: Any, axes: Any = 2) -> TFArray:
    return _out(tf.tensordot(*_promote(_tensor(x1), x2), axes=axes))


def isdtype(dtype: Any, kind: Any) -> bool:
    dtype = tf.as_dtype(dtype)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k == "real floating" and dtype.is_floating or k == "integral" and dtype.is_integer \
                or k == "bool" and dtype == tf.bool or k == "numeric" and (dtype.is_floating or dtype.is_integer) \
                or k == dtype:
            return True
    return False


class _Linalg:
    """``xp.linalg`` for TF tensors."""

    @staticmethod
    def inv(x: Any) -> TFArray:
        return _out(tf.linalg.inv(_tensor(x)))

    @staticmethod
    def det(x: Any) -> TFArray:
        return _out(tf.linalg.det(_tensor(x)))

    @staticmethod
    def cross(x1: Any, x2: Any, axis: int = -1) -> TFArray:
        if axis not in (-1, _rank(x1) - 1):
            raise ValueError("cross is implemented for the last axis only")
        return _out(tf.linalg.cross(*_promote(_tensor(x1), x2)))

    @staticmethod
    def vector_norm(x: Any, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> TFArray:  # noqa: A002
        if ord != 2:
            raise ValueError("vector_norm is implemented for ord=2 only")
        tensor = _tensor(x)
        return _out(tf.sqrt(tf.reduce_sum(tensor * tensor, axis=axis, keepdims=keepdims)))

    matmul = staticmethod(matmul)
    matrix_transpose = staticmethod(matrix_transpose)


linalg = _Linalg()


# -------------------------------------------------------------------- registration
def segment_sum(values: Any, segment: Any, nseg: Any) -> TFArray:
    """Native scatter-add, ``tf.math.unsorted_segment_sum``, for :func:`dpmodel.xp.segment_sum`."""
    return _out(tf.math.unsorted_segment_sum(_tensor(values), _tensor(segment), tf.cast(unwrap(nseg), tf.int64)))


def weighted_row_sum(table: Any, index: Any, weight: Any) -> TFArray:
    """The chunked table sum of :mod:`backends.tf.row_sum` for :func:`dpmodel.xp.weighted_row_sum`."""
    return _out(row_sum.weighted_row_sum(_tensor(table), _tensor(index), _tensor(weight)))


_REGISTERED = []


def register() -> None:
    """Make :func:`dpmodel.xp.array_namespace` return this namespace for TF arrays (idempotent)."""
    if _REGISTERED:
        return
    from dpmodel import xp as dpxp

    namespace = sys.modules[__name__]
    dpxp.register_namespace(is_tf_array, namespace)
    dpxp.register_segment_sum(lambda xp: xp is namespace, segment_sum)
    dpxp.register_weighted_row_sum(lambda xp: xp is namespace, weighted_row_sum)
    _REGISTERED.append(True)
