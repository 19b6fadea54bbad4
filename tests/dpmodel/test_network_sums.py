"""``EmbeddingNet.call_summed``: the sum over slots of the net's outputs, the last skip term added once."""

import numpy as np
import pytest

from dpmodel.network import EmbeddingNet

NETS = {
    "resnet doubling": dict(neuron=[4, 8, 16]),
    "resnet same width, timestep": dict(neuron=[3, 3, 6], resnet_dt=True),
    "no skip (4 -> 5)": dict(neuron=[4, 5]),
    "one layer": dict(neuron=[6]),
    "softplus": dict(neuron=[2, 4], activation_function="softplus"),
}


@pytest.mark.parametrize("options", NETS.values(), ids=NETS.keys())
def test_call_summed_equals_the_sum_of_call(options):
    net = EmbeddingNet(1, seed=7, **options)
    x = np.random.default_rng(3).normal(size=(2, 5, 7))
    expected = np.sum(net.call(x[..., None]), axis=-2)
    got = net.call_summed(x)
    assert got.shape == (2, 5, options["neuron"][-1])
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)


def test_call_summed_of_no_slot_is_zero():
    net = EmbeddingNet(1, [4, 8], seed=1)
    assert np.array_equal(net.call_summed(np.zeros((3, 0))), np.zeros((3, 8)))
