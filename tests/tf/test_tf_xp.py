"""The array-API namespace for TF tensors: dpmodel helpers inside a ``tf.function`` with ``None`` dims."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from dpmodel.env_mat import pair_displacements
from dpmodel.xp import array_namespace, segment_sum, take_rows

from backends.tf import xp as tfxp


def test_namespace_serves_tensors_variables_and_wrappers():
    tfxp.register()
    for array in (tf.constant([1.0]), tf.Variable([1.0]), tfxp.wrap(np.ones(2))):
        assert array_namespace(array, np.ones(1)) is tfxp


def test_dpmodel_helpers_in_one_trace_over_any_size():
    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float64), tf.TensorSpec([None, None, 4], tf.int64)],
                 autograph=False)
    def run(coord, nlist):
        traces.append(1)
        coord, nlist = tfxp.wrap(coord), tfxp.wrap(nlist)
        nf, nloc, nnei = nlist.shape
        assert isinstance(nf, tfxp.TFArray) and nnei == 4
        diff = pair_displacements(coord, nlist)
        gathered = take_rows(coord, tfxp.reshape(tfxp.where(nlist >= 0, nlist, 0), (nf, nloc * nnei)))
        summed = segment_sum(tfxp.reshape(diff, (-1, 3)), tfxp.reshape(tfxp.where(nlist >= 0, nlist, 0), (-1,)),
                             nf * coord.shape[1])
        return diff.t, gathered.t, summed.t

    rng = np.random.default_rng(0)
    for nf, nall, nloc in ((1, 5, 3), (2, 9, 4)):
        coord = rng.normal(size=(nf, nall, 3))
        nlist = rng.integers(-1, nall, size=(nf, nloc, 4))
        diff, gathered, summed = (t.numpy() for t in run(coord, nlist))
        np.testing.assert_allclose(diff, pair_displacements(coord, nlist), rtol=1e-15)
        safe = np.where(nlist >= 0, nlist, 0)
        np.testing.assert_array_equal(gathered, take_rows(coord, safe.reshape(nf, -1)))
        np.testing.assert_allclose(summed, segment_sum(diff.reshape(-1, 3), safe.reshape(-1), nf * nall), rtol=1e-15)
    assert len(traces) == 1


def test_operators_promote_like_the_array_api():
    a = tfxp.asarray(np.array([1, 2], dtype=np.int32))
    b = tfxp.asarray(np.array([3, 4], dtype=np.int64))
    assert (a * b).dtype == tf.int64 and (2 * a).dtype == tf.int32
    x = tfxp.asarray(np.array([1.5], dtype=np.float32))
    assert (x + tfxp.asarray(np.array([1.0]))).dtype == tf.float64 and (x * 2.0).dtype == tf.float32
    assert (tf.constant([2.0], tf.float64) - tfxp.asarray(np.array([1.0]))).numpy().tolist() == [1.0]
    mask = tfxp.asarray(np.array([True, False]))
    assert (~mask & mask).numpy().tolist() == [False, False]
