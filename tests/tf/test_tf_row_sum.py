"""The chunked table sum of the TF backend: value and both gradients against loops, eager, graph and XLA."""

import numpy as np
import pytest
import tensorflow as tf

from backends.tf import row_sum
from dpmodel import xp as dpxp
from row_sum_case import CHUNKINGS, GRAD, INDEX, TABLE, WEIGHT, loops


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


@pytest.mark.parametrize("elements", CHUNKINGS)
@pytest.mark.parametrize("run", ["eager", "graph", "xla"])
def test_value_and_gradients_equal_loops(monkeypatch, elements, run):
    monkeypatch.setattr(dpxp, "ROW_SUM_CHUNK_ELEMENTS", elements)
    expected = loops()
    got = compiled(run)(tf.constant(TABLE), tf.constant(INDEX), tf.constant(WEIGHT))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e, rtol=0, atol=1e-13)


def test_no_columns_give_zeros():
    out = row_sum.weighted_row_sum(tf.constant(TABLE), tf.zeros((3, 0), tf.int64), tf.zeros((3, 0), tf.float64))
    assert out.shape == (3, 7) and not np.any(out.numpy())
