"""The torch wrappers of dpmodel classes: parameters, buffers, serialization, refusals, descriptor."""

import numpy as np
import pytest
import torch

from backends.pt import modules
from dpmodel.capabilities import check_supported
from dpmodel.errors import UnsupportedOptionError
from dpmodel.neighbor import neighbor_data
from dpmodel.serialization import trees_equal
from pt_helpers import CASES, TOL, assert_close, build, precision, tensor


@pytest.mark.parametrize("case", list(CASES))
def test_serialize_roundtrip_exact(case):
    model, *_ = build(case)
    data = model.serialize()
    wrapped = modules.EnergyModel.deserialize(data)
    assert trees_equal(wrapped.serialize(), data) == []
    # and through the torch dtypes: parameters keep the model precision
    dtype = torch.float32 if precision(case) == "float32" else torch.float64
    assert {p.dtype for p in wrapped.descriptor.parameters()} == {dtype}


def test_arrays_become_parameters_and_buffers():
    model, *_ = build("fparam_aparam")
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    params = dict(wrapped.named_parameters())
    buffers = dict(wrapped.named_buffers())
    # every non-None layer array (w, b, idt) of dpmodel is one trainable parameter
    def count(collection):
        return sum(a is not None for net in collection.networks for layer in net.layers
                   for a in (layer.w, layer.b, layer.idt))

    assert len([k for k in params if k.startswith("descriptor.")]) == count(model.descriptor.embeddings) == 12
    assert len([k for k in params if k.startswith("fitting.")]) == count(model.fitting.nets) == 14
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in params.values())
    assert {"out_bias", "out_std", "descriptor.davg", "descriptor.dstd", "fitting.bias_atom_e",
            "fitting.fparam_avg", "fitting.fparam_inv_std", "fitting.aparam_avg",
            "fitting.aparam_inv_std"} <= set(buffers)
    assert isinstance(wrapped.descriptor, modules.DescrptSeR)
    assert isinstance(wrapped.descriptor.embeddings.networks[0].layers[0], modules.Layer)
    # a state dict round trip through a fresh module restores every array
    other = modules.EnergyModel.deserialize(model.serialize())
    with torch.no_grad():
        for p in wrapped.parameters():
            p.add_(0.25)
    other.load_state_dict(wrapped.state_dict())
    assert trees_equal(other.serialize(), wrapped.serialize()) == []
    assert trees_equal(other.serialize(), model.serialize()) != []


def test_trainable_false_freezes_layers():
    model, *_ = build("base")
    data = model.serialize()
    data["descriptor"]["trainable"] = False
    for net in data["descriptor"]["embeddings"]["networks"]:
        for layer in net["layers"]:
            layer["trainable"] = False
    wrapped = modules.EnergyModel.deserialize(data)
    assert not any(p.requires_grad for p in wrapped.descriptor.parameters())
    assert all(p.requires_grad for p in wrapped.fitting.parameters())
    assert trees_equal(wrapped.serialize(), data) == []


def test_type_one_side_false_refused_like_dpmodel():
    with pytest.raises(UnsupportedOptionError) as err:
        modules.DescrptSeR(4.0, 0.5, [10, 10], [4, 8], type_one_side=False)
    with pytest.raises(UnsupportedOptionError) as expected:
        check_supported("model/descriptor/type_one_side", False, "pt")
    assert str(err.value) == str(expected.value)
    assert "PyTorch" in str(err.value) and "type_one_side" in str(err.value)
    model, *_ = build("base")
    data = model.serialize()
    data["descriptor"]["type_one_side"] = False
    with pytest.raises(UnsupportedOptionError):
        modules.model_from_dict(data)


@pytest.mark.parametrize("case", ["base", "resnet_dt", "exclude_types", "env_protection", "float32"])
@pytest.mark.parametrize("kind", ["triclinic", "cluster", "small"])
def test_descriptor_matches_dpmodel(case, kind):
    model, system, *_ = build(case, kind)
    desc = model.descriptor
    coord_ext, atype_ext, _, nlist = neighbor_data(system.coord, system.atype, system.box, desc.rcut, desc.sel)
    expected = desc.call(coord_ext, atype_ext, nlist)
    wrapped = modules.DescrptSeR.deserialize(desc.serialize())
    actual = wrapped.call(tensor(coord_ext), tensor(atype_ext, torch.int64), tensor(nlist, torch.int64))
    assert actual.dtype == torch.float64
    assert_close(actual, expected, TOL[precision(case)])
    assert np.abs(expected).max() > 1e-3


@pytest.mark.parametrize("neuron,resnet_dt", [([4, 8, 16], False), ([3, 3, 6], True), ([5], False)])
def test_embedding_sum_runs_features_first_with_the_numbers_of_numpy(neuron, resnet_dt):
    """Torch is registered for the features-first layout of ``call_summed``; it must agree with NumPy's rows."""
    from dpmodel import xp as dpxp
    from dpmodel.network import EmbeddingNet

    net = EmbeddingNet(1, neuron, resnet_dt=resnet_dt, seed=5)
    x = np.random.default_rng(2).normal(size=(1, 6, 9))
    assert dpxp.features_first(dpxp.array_namespace(torch.from_numpy(x)))
    expected = net.call_summed(x)
    got = modules.to_torch(net).call_summed(torch.from_numpy(x))
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-13, atol=1e-13)
