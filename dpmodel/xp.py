"""Array-namespace helpers that the Python array API standard leaves out.

Every function takes arrays and finds their namespace; none imports a framework.
Backends whose arrays ``array_api_compat`` does not know (TensorFlow) register a
namespace for them with :func:`register_namespace`.
"""

from __future__ import annotations

from typing import Any, Callable

import array_api_compat
import numpy as np

Array = Any
"""Any array of a namespace that follows the Python array API standard."""

_EXTRA_NAMESPACES: list[tuple[Callable[[Any], bool], Any]] = []


def register_namespace(is_array: Callable[[Any], bool], namespace: Any) -> None:
    """Teach :func:`array_namespace` a namespace for arrays it does not know.

    Parameters
    ----------
    is_array
        Predicate that is true for the arrays this namespace serves.
    namespace
        Module-like object with the array API functions used by ``dpmodel``.
    """
    _EXTRA_NAMESPACES.append((is_array, namespace))
    _BY_TYPES.clear()


_BY_TYPES: dict[tuple[type, ...], Any] = {}
"""Namespaces found so far, by the types of the arrays: the namespace of an array depends on its type
only, and ``array_api_compat.array_namespace`` costs ~10 us a call (a PyTorch training step of the water model makes ~140 calls)."""


def array_namespace(*arrays: Any) -> Any:
    """Namespace shared by ``arrays`` (``None`` and Python scalars are ignored)."""
    arrays = tuple(a for a in arrays if a is not None and not isinstance(a, (int, float, bool)))
    types = tuple(type(a) for a in arrays)
    namespace = _BY_TYPES.get(types)
    if namespace is None:
        namespace = _BY_TYPES[types] = _find_namespace(arrays)
    return namespace


def _find_namespace(arrays: tuple[Any, ...]) -> Any:
    for is_array, namespace in _EXTRA_NAMESPACES:
        if arrays and any(is_array(a) for a in arrays):
            return namespace
    return array_api_compat.array_namespace(*arrays)


_SEGMENT_SUMS: list[tuple[Callable[[Any], bool], Callable[[Array, Array, int], Array]]] = []


def register_segment_sum(is_namespace: Callable[[Any], bool], native: Callable[[Array, Array, int], Array]) -> None:
    """Give :func:`segment_sum` a native scatter-add for a namespace (``index_add``, ``segment_sum``)."""
    _SEGMENT_SUMS.append((is_namespace, native))


_FEATURES_FIRST: list[Callable[[Any], bool]] = []


def register_features_first(is_namespace: Callable[[Any], bool]) -> None:
    """Have nets summed over many samples run features first in a namespace
    (:meth:`dpmodel.network.LayerStack.call_summed`): where a small weight times a wide block
    is the faster matrix product (MKL in PyTorch); compilers that choose layouts (XLA) do not need it."""
    _FEATURES_FIRST.append(is_namespace)


def features_first(xp) -> bool:
    """Whether ``xp`` was registered by :func:`register_features_first`."""
    return any(is_namespace(xp) for is_namespace in _FEATURES_FIRST)


DENSE_ROW_SUM_RATIO = 4
"""The portable :func:`weighted_row_sum` switches from gathering each segment's (L, ncol) rows to
a dense (nseg, nrows) matrix once ``L * ncol`` exceeds this times ``nrows``: the crossover
measured for compressed water models in XLA on a CPU, before JAX and TensorFlow had their
chunked natives (the gather won for
``[5, 10, 20]`` embedding nets, L = 828, ncol = 20, nrows = 8160; the dense product for
``[25, 50, 100]``, ncol = 100)."""

ROW_SUM_CHUNK_ELEMENTS = 1 << 10
"""Table elements a chunked native :func:`weighted_row_sum` gathers per row and loop step
(:func:`row_sum_chunks`): 1.5 MB of float64 for 192 rows (0.75 to 12 MB measured on compressed
water models, ``[5, 10, 20]`` and ``[25, 50, 100]`` nets, in JAX and TensorFlow: 0.75 to 3 MB
were fastest). Per row, because exported JAX programs leave the number of rows symbolic."""


def row_sum_chunks(width: int, ncol: int) -> tuple[int, int]:
    """``(chunk, nchunk)``: columns per loop step and steps for a row sum over ``width`` columns of
    a table with ``ncol`` columns (the last step zero-weight padded to ``chunk``)."""
    chunk = max(1, min(width, ROW_SUM_CHUNK_ELEMENTS // max(1, ncol)))
    return chunk, -(-width // chunk)


ROW_DOT_MAX_REDUCE = 32
"""Longest reduction a chunked native :func:`row_dots` lets XLA see (:func:`row_dot_lanes`). XLA on
the CPU rewrites a longer one into a two-stage reduce-window, which it does not fuse with the
gather of table rows."""


def row_dot_lanes(ncol: int) -> int:
    """Lanes of a chunked native :func:`row_dots`: ``ncol`` is summed as ``(ncol // lanes, lanes)``,
    first over the ``ncol // lanes`` axis, then over the lanes. The fewest lanes (a divisor of
    ``ncol``) that keep the first sum at most :data:`ROW_DOT_MAX_REDUCE` long; 1 when none does.

    Measured with ``[25, 50, 100]`` nets (ncol 100, 4 lanes; 192 rows, 552 columns, a table of
    8160 rows, 2 CPU cores): 3.5 vs 5.6 ms in TensorFlow and 3.5 vs 4.8 ms in JAX; for ncol 64 and
    128, 1.3 to 1.6 times faster than one sum over ``ncol``.
    """
    for lanes in range(1, ncol):
        if ncol % lanes == 0 and ncol // lanes <= ROW_DOT_MAX_REDUCE:
            return lanes
    return 1


_ROW_SUMS: list[tuple[Callable[[Any], bool], Callable[[Array, Array, Array], Array]]] = []


def register_weighted_row_sum(is_namespace: Callable[[Any], bool],
                              native: Callable[[Array, Array, Array], Array]) -> None:
    """Give :func:`weighted_row_sum` a native sparse product for a namespace (``embedding_bag``)."""
    _ROW_SUMS.append((is_namespace, native))


def device(array: Array) -> Any:
    """The device of ``array`` (``array_api_compat.device``), for creating arrays beside it."""
    return array_api_compat.device(array)


def to_numpy(array: Array) -> np.ndarray:
    """Copy any array (or ``None``) to a NumPy array on the host."""
    if array is None:
        return None
    if isinstance(array, np.ndarray):
        return array
    try:
        return np.asarray(array)
    except (TypeError, ValueError, RuntimeError):
        return np.from_dlpack(array)


def take_rows(array: Array, index: Array) -> Array:
    """Gather along axis 1 per frame: ``out[f, k, ...] = array[f, index[f, k], ...]``.

    Parameters
    ----------
    array : shape (nf, n, ...)
    index : shape (nf, m), integer, values in ``[0, n)``

    Returns
    -------
    Array, shape (nf, m, ...)
    """
    xp = array_namespace(array, index)
    nf, n = array.shape[0], array.shape[1]
    tail = tuple(array.shape[2:])
    offset = xp.reshape(xp.arange(nf, dtype=index.dtype, device=array_api_compat.device(index)) * n, (nf, 1))
    flat = xp.reshape(index + offset, (-1,))
    out = xp.take(xp.reshape(array, (nf * n, *tail)), flat, axis=0)
    return xp.reshape(out, (nf, index.shape[1], *tail))


def segment_sum(values: Array, segment: Array, nseg: int) -> Array:
    """Sum ``values`` into ``nseg`` bins: ``out[s] = sum(values[k] for segment[k] == s)``.

    Parameters
    ----------
    values : shape (n, ...)
    segment : shape (n,), integer, values in ``[0, nseg)``
    nseg : number of bins

    Returns
    -------
    Array, shape (nseg, ...)
    """
    xp = array_namespace(values, segment)
    for is_namespace, native in _SEGMENT_SUMS:
        if is_namespace(xp):
            return native(values, segment, nseg)
    if array_api_compat.is_numpy_namespace(xp):
        if values.ndim == 1:
            return np.bincount(segment, weights=values, minlength=nseg).astype(values.dtype, copy=False)
        out = np.zeros((nseg, *values.shape[1:]), dtype=values.dtype)
        np.add.at(out, segment, values)
        return out
    # Portable scatter-add: sort by segment, prefix sums, differences at the boundaries.
    order = xp.argsort(segment, stable=True)
    sorted_seg = xp.take(segment, order)
    sorted_val = xp.take(values, order, axis=0)
    zero = xp.zeros((1, *values.shape[1:]), dtype=values.dtype, device=array_api_compat.device(values))
    prefix = xp.concat([zero, xp.cumulative_sum(sorted_val, axis=0)], axis=0)
    bins = xp.arange(nseg, dtype=sorted_seg.dtype, device=array_api_compat.device(segment))
    start = xp.searchsorted(sorted_seg, bins, side="left")
    stop = xp.searchsorted(sorted_seg, bins, side="right")
    return xp.take(prefix, stop, axis=0) - xp.take(prefix, start, axis=0)


def weighted_row_sum(table: Array, index: Array, weight: Array) -> Array:
    """Weighted sums of table rows: ``out[s] = sum_l weight[s, l] * table[index[s, l]]``.

    The product of the sparse (nseg, nrows) matrix with ``weight[s, l]`` at column
    ``index[s, l]`` (repeated columns add up) and ``table``. NumPy (SciPy's CSR product)
    and registered natives (PyTorch's ``embedding_bag``; loops over column chunks in JAX and
    TensorFlow) form no (nseg, L, ncol) block of gathered rows. The portable form gathers
    that block while it is small, else builds the dense (nseg, nrows) matrix by a
    scatter-add and takes one matrix product (:data:`DENSE_ROW_SUM_RATIO`). Differentiable in ``weight`` wherever the namespace is.

    Parameters
    ----------
    table : shape (nrows, ncol)
    index : shape (nseg, L), integer, values in ``[0, nrows)``
    weight : shape (nseg, L), table dtype

    Returns
    -------
    Array, shape (nseg, ncol)
    """
    xp = array_namespace(table, index, weight)
    for is_namespace, native in _ROW_SUMS:
        if is_namespace(xp):
            return native(table, index, weight)
    nseg, nrows = index.shape[0], table.shape[0]
    if index.shape[1] == 0:
        return xp.zeros((nseg, table.shape[1]), dtype=table.dtype, device=array_api_compat.device(table))
    if array_api_compat.is_numpy_namespace(xp):
        from scipy.sparse import csr_matrix

        width = index.shape[1]
        matrix = csr_matrix((np.reshape(weight, (-1,)), np.reshape(index, (-1,)),
                             np.arange(0, nseg * width + 1, width)), shape=(nseg, nrows))
        return np.asarray(matrix @ table)
    width, ncol = index.shape[1], table.shape[1]
    if width * ncol <= DENSE_ROW_SUM_RATIO * nrows:
        # gather the rows, (nseg, L, ncol); one batched (1, L) @ (L, ncol) product per segment
        rows = xp.reshape(xp.take(table, xp.reshape(index, (-1,)), axis=0), (nseg, width, ncol))
        return xp.matmul(weight[:, None, :], rows)[:, 0, :]
    # the dense (nseg, nrows) matrix by one scatter-add, then one matrix product
    dense = segment_sum(xp.reshape(weight, (-1,)), xp.reshape(index + _row_offsets(xp, nseg, nrows, index), (-1,)),
                        nseg * nrows)
    return xp.matmul(xp.reshape(dense, (nseg, nrows)), table)


def row_dots(table: Array, index: Array, vectors: Array) -> Array:
    """``out[s, l] = table[index[s, l]] . vectors[s]``: the gradient of :func:`weighted_row_sum` in ``weight``.

    Parameters
    ----------
    table : shape (nrows, ncol)
    index : shape (nseg, L), integer, values in ``[0, nrows)``
    vectors : shape (nseg, ncol)

    Returns
    -------
    Array, shape (nseg, L)
    """
    xp = array_namespace(table, index, vectors)
    nseg, nrows = index.shape[0], table.shape[0]
    dots = xp.matmul(vectors, xp.matrix_transpose(table))  # (nseg, nrows)
    flat = xp.reshape(index + _row_offsets(xp, nseg, nrows, index), (-1,))
    return xp.reshape(xp.take(xp.reshape(dots, (-1,)), flat), index.shape)


def _row_offsets(xp: Any, nseg: int, nrows: int, index: Array) -> Array:
    """``s * nrows`` as a column, (nseg, 1): row ``s`` of a flattened (nseg, nrows) matrix."""
    return xp.reshape(xp.arange(nseg, dtype=index.dtype, device=array_api_compat.device(index)) * nrows, (nseg, 1))


def as_array(xp: Any, array: Array, like: Array | None = None) -> Array:
    """A stored parameter in namespace ``xp`` (a no-op unless it is a foreign NumPy array).

    dpmodel objects hold NumPy parameters; evaluated on other arrays (array-api-strict,
    framework tensors), they are converted on the fly, on the device of ``like``.
    """
    if array is None or not isinstance(array, np.ndarray) or array_api_compat.is_numpy_namespace(xp):
        return array
    device = array_api_compat.device(like) if like is not None else None
    return xp.asarray(array, device=device)
