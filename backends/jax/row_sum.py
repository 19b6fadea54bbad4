"""``weighted_row_sum`` for ``jax.numpy``: a loop over column chunks, so no gathered block is kept.

What a compressed table sums (:meth:`dpmodel.table.TabulatedEmbedding.sum_slots`):
``out[s] = sum_l weight[s, l] * table[index[s, l]]``. XLA on the CPU fuses a gather into
a multiply-and-sum, not into a matrix product, so the portable forms either gather an
(nseg, L, ncol) block (85 MB for 192 water atoms, 92 slots and ``[25, 50, 100]`` nets) or
multiply by the dense (nseg, nrows) matrix (a product over all ``nrows`` table rows); both
run at memory speed. Here a ``lax.scan`` gathers a chunk of columns at a time
(:func:`dpmodel.xp.row_sum_chunks`) into a multiply-and-sum, and a custom VJP does the same
for the gradient in ``weight`` (:func:`dpmodel.xp.row_dots`, chunk by chunk, each row summed
in pieces of :func:`dpmodel.xp.row_dot_lanes`) instead of storing the gathered rows. The
fusion needs :mod:`backends.jax.compiler`'s options, which keep YNNPACK off reductions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from dpmodel.xp import row_dot_lanes, row_sum_chunks


def _chunks(index: Any, weight: Any, ncol: int) -> tuple[Any, Any, int]:
    """``index`` and ``weight`` (nseg, L) as (nchunk, nseg, chunk), zero-weight padded; and L."""
    nseg, width = index.shape
    chunk, nchunk = row_sum_chunks(width, ncol)
    pad = nchunk * chunk - width
    if pad:
        index = jnp.pad(index, ((0, 0), (0, pad)))
        weight = jnp.pad(weight, ((0, 0), (0, pad)))

    def steps(a: Any) -> Any:
        return jnp.swapaxes(jnp.reshape(a, (nseg, nchunk, chunk)), 0, 1)

    return steps(index), steps(weight), width


def _forward(table: Any, index: Any, weight: Any) -> Any:
    idx, wts, _ = _chunks(index, weight, table.shape[1])

    def step(total: Any, part: tuple[Any, Any]) -> tuple[Any, None]:
        rows = jnp.take(table, part[0], axis=0)  # (nseg, chunk, ncol)
        # a multiply-and-sum, which XLA fuses with the gather under backends.jax.compiler's options:
        # 1.3 vs 6.2 ms as a batched product (192 rows, 552 columns, ncol 100, 8160 table rows)
        return total + jnp.sum(part[1][:, :, None] * rows, axis=1), None

    start = jnp.zeros((index.shape[0], table.shape[1]), dtype=table.dtype)
    return jax.lax.scan(step, start, (idx, wts))[0]


def _row_dots(table: Any, index: Any, vectors: Any) -> Any:
    """``out[s, l] = table[index[s, l]] . vectors[s]``, (nseg, L), chunk by chunk."""
    if index.shape[1] == 0:
        return jnp.zeros(index.shape, dtype=table.dtype)
    ncol = table.shape[1]
    idx, _, width = _chunks(index, jnp.zeros(index.shape, dtype=table.dtype), ncol)
    lanes = row_dot_lanes(ncol)
    split = jnp.reshape(vectors, (vectors.shape[0], 1, ncol // lanes, lanes))

    def step(carry: None, part: Any) -> tuple[None, Any]:
        # a multiply-and-sum in two short sums (row_dot_lanes): 3.5 vs 4.8 ms as one sum, 9.4 ms as a
        # batched product (same sizes)
        rows = jnp.reshape(jnp.take(table, part, axis=0), (*part.shape, ncol // lanes, lanes))
        return carry, jnp.sum(jnp.sum(rows * split, axis=2), axis=-1)

    dots = jax.lax.scan(step, None, idx)[1]  # (nchunk, nseg, chunk)
    return jnp.reshape(jnp.swapaxes(dots, 0, 1), (index.shape[0], dots.shape[0] * dots.shape[2]))[:, :width]


@jax.custom_vjp
def weighted_row_sum(table: Any, index: Any, weight: Any) -> Any:
    """``out[s] = sum_l weight[s, l] * table[index[s, l]]``; (nrows, ncol), (nseg, L), (nseg, L) -> (nseg, ncol)."""
    return _forward(table, index, weight)


def _vjp_forward(table: Any, index: Any, weight: Any) -> tuple[Any, tuple[Any, Any, Any]]:
    return _forward(table, index, weight), (table, index, weight)


def _vjp_backward(saved: tuple[Any, Any, Any], grad: Any) -> tuple[Any, None, Any]:
    table, index, weight = saved
    # d/d table: a scatter of weight x grad; XLA drops it under jit unless the table is differentiated
    rows = jnp.reshape(weight[:, :, None] * grad[:, None, :], (-1, table.shape[1]))
    table_grad = jax.ops.segment_sum(rows, jnp.reshape(index, (-1,)), num_segments=table.shape[0])
    return table_grad, None, _row_dots(table, index, grad)


weighted_row_sum.defvjp(_vjp_forward, _vjp_backward)
