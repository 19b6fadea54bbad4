"""The chunked table sum of the JAX backend: value and both gradients against loops, chunked or not."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from backends.jax import row_sum
from backends.jax.modules import x64

RNG = np.random.default_rng(3)
TABLE = RNG.normal(size=(50, 7))
INDEX = RNG.integers(0, 50, size=(5, 11))
INDEX[1, :4] = 17  # a repeated row adds up
WEIGHT = RNG.normal(size=(5, 11))
GRAD = RNG.normal(size=(5, 7))


def loops():
    """Value, d(value . GRAD)/d weight and d(value . GRAD)/d table by explicit loops."""
    value = np.zeros((5, 7))
    d_weight = np.zeros((5, 11))
    d_table = np.zeros_like(TABLE)
    for s in range(5):
        for col, (k, w) in enumerate(zip(INDEX[s], WEIGHT[s])):
            value[s] += w * TABLE[k]
            d_weight[s, col] = TABLE[k] @ GRAD[s]
            d_table[k] += w * GRAD[s]
    return value, d_weight, d_table


# 1 column per step; 3 (11 = 3 + 3 + 3 + 2, the last step padded); all 11 in one step
@pytest.mark.parametrize("elements", [1, 3 * 7, 1 << 11])
def test_value_and_gradients_equal_loops(monkeypatch, elements):
    monkeypatch.setattr(row_sum, "CHUNK_ELEMENTS", elements)
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
