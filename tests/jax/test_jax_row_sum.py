"""The chunked table sum of the JAX backend: value and both gradients against loops, chunked or not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from backends.jax import row_sum
from backends.jax.modules import x64
from dpmodel import xp as dpxp
from row_sum_case import CHUNKINGS, GRAD, INDEX, TABLE, WEIGHT, loops


@pytest.mark.parametrize("elements", CHUNKINGS)
def test_value_and_gradients_equal_loops(monkeypatch, elements):
    monkeypatch.setattr(dpxp, "ROW_SUM_CHUNK_ELEMENTS", elements)
    value, d_weight, d_table = loops()
    with x64():
        table, index, weight = jnp.asarray(TABLE), jnp.asarray(INDEX), jnp.asarray(WEIGHT)

        def loss(t, w):
            return jnp.sum(row_sum.weighted_row_sum(t, index, w) * jnp.asarray(GRAD))

        out = jax.jit(row_sum.weighted_row_sum)(table, index, weight)
        got_table, got_weight = jax.jit(jax.grad(loss, argnums=(0, 1)))(table, weight)
    np.testing.assert_allclose(np.asarray(out), value, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.asarray(got_weight), d_weight, rtol=0, atol=1e-13)
    np.testing.assert_allclose(np.asarray(got_table), d_table, rtol=0, atol=1e-13)


def test_no_columns_give_zeros():
    with x64():
        index, weight = jnp.zeros((3, 0), dtype=jnp.int64), jnp.zeros((3, 0))
        out = row_sum.weighted_row_sum(jnp.asarray(TABLE), index, weight)
        grad = jax.grad(lambda w: jnp.sum(row_sum.weighted_row_sum(jnp.asarray(TABLE), index, w)))(weight)
    assert out.shape == (3, 7) and not np.any(np.asarray(out))
    assert grad.shape == (3, 0)
