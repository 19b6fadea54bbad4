"""JAX wrappers: exact serialization round trips, the parameter pytree, refusals, no global x64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from backends.jax import modules
from dpmodel.capabilities import check_supported
from dpmodel.errors import UnsupportedOptionError
from dpmodel.serialization import trees_equal
from jax_helpers import CASES, build


@pytest.mark.parametrize("case", list(CASES))
def test_serialize_roundtrip_is_exact(case):
    model, *_ = build(case)
    data = model.serialize()
    wrapped = modules.EnergyModel.deserialize(data)
    assert trees_equal(wrapped.serialize(), data) == []
    again = modules.EnergyModel.deserialize(wrapped.serialize())
    assert trees_equal(again.serialize(), data) == []


@pytest.mark.parametrize("case", ["base", "float32"])
def test_parameters_are_jax_arrays_of_the_stored_dtype(case):
    model, *_ = build(case)
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    leaves = jax.tree.leaves(wrapped.params)
    assert leaves and all(isinstance(leaf, jax.Array) for leaf in leaves)
    expected = np.float32 if case == "float32" else np.float64
    assert wrapped.descriptor.davg.dtype == expected
    assert wrapped.descriptor.embeddings[(0,)].layers[0].w.dtype == expected
    assert wrapped.out_bias.dtype == np.float64  # output statistics are float64 in every precision
    assert isinstance(wrapped.descriptor, modules.DescrptSeR) and wrapped.descriptor.backend == "jax"


def test_bind_is_pure_and_split_merge_round_trip():
    model, *_ = build("fparam_aparam")
    model.fitting.nets.networks[1].layers[0].trainable = False
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    params = wrapped.params
    with modules.x64():
        doubled = jax.tree.map(lambda a: a * 2, params)
    bound = modules.bind(wrapped, doubled)
    assert bound.descriptor.davg is doubled["descriptor"]["davg"]
    assert wrapped.descriptor.davg is params["descriptor"]["davg"]  # the original is untouched
    trainable, frozen = modules.split_trainable(wrapped, params)
    assert trainable["descriptor"]["davg"] is None and frozen["descriptor"]["davg"] is not None
    assert trainable["fitting"]["nets"][1][0]["w"] is None  # a frozen layer
    assert frozen["fitting"]["nets"][1][0]["w"] is not None
    assert trainable["fitting"]["nets"][0][0]["w"] is not None and frozen["fitting"]["nets"][0][0]["w"] is None
    merged = modules.merge_trainable(trainable, frozen)
    assert jax.tree.structure(merged) == jax.tree.structure(params)
    assert all(a is b for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(params)))


def test_type_one_side_false_is_refused_with_the_capabilities_error():
    model, *_ = build("base")
    data = model.serialize()
    data["descriptor"]["type_one_side"] = False
    with pytest.raises(UnsupportedOptionError) as caught:
        modules.EnergyModel.deserialize(data)
    with pytest.raises(UnsupportedOptionError) as expected:
        check_supported("model/descriptor/type_one_side", False, "jax")
    assert str(caught.value) == str(expected.value)
    assert "'JAX'" in str(caught.value) and "--tf" in str(caught.value)


def test_backend_does_not_change_global_x64():
    before = jax.config.jax_enable_x64
    model, system, *_ = build("base")
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    wrapped.call(system.coord, system.atype, system.box)
    assert jax.config.jax_enable_x64 == before
    with modules.x64():
        assert jnp.ones(1).dtype == jnp.float64
    assert jax.config.jax_enable_x64 == before
