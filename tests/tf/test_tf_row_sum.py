"""The chunked table sum of the TF backend: value and both gradients against loops, eager, graph and XLA."""

import numpy as np
import pytest
import tensorflow as tf

from backends.tf import row_sum

RNG = np.random.default_rng(4)
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


def value_and_grads(table, index, weight):
    with tf.GradientTape() as tape:
        tape.watch([table, weight])
        out = row_sum.weighted_row_sum(table, index, weight)
        loss = tf.reduce_sum(out * GRAD)
    d_table, d_weight = tape.gradient(loss, [table, weight])
    return out, d_weight, d_table


SIGNATURE = [tf.TensorSpec([50, 7], tf.float64), tf.TensorSpec([None, 11], tf.int64),
             tf.TensorSpec([None, 11], tf.float64)]


def compiled(run):
    """``value_and_grads`` run eagerly, as a graph with a dynamic row count, or compiled by XLA (fresh trace)."""
    if run == "eager":
        return value_and_grads
    return tf.function(value_and_grads, input_signature=SIGNATURE, jit_compile=run == "xla")


# 1 column per step; 3 (11 = 3 + 3 + 3 + 2, the last step padded); all 11 in one step
@pytest.mark.parametrize("elements", [1, 3 * 7, 1 << 11])
@pytest.mark.parametrize("run", ["eager", "graph", "xla"])
def test_value_and_gradients_equal_loops(monkeypatch, elements, run):
    monkeypatch.setattr(row_sum, "CHUNK_ELEMENTS", elements)
    expected = loops()
    got = compiled(run)(tf.constant(TABLE), tf.constant(INDEX), tf.constant(WEIGHT))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=0, atol=1e-13)


def test_no_columns_give_zeros():
    out = row_sum.weighted_row_sum(tf.constant(TABLE), tf.zeros((3, 0), tf.int64), tf.zeros((3, 0), tf.float64))
    assert out.shape == (3, 7) and not np.any(out.numpy())
