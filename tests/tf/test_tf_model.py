"""The TensorFlow model against dpmodel, finite differences and its own serialization."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dpmodel.capabilities import check_supported
from dpmodel.errors import UnsupportedOptionError
from dpmodel.model import EnergyModel as DPModel
from dpmodel.model_factory import model_from_dict
from dpmodel.serialization import trees_equal
from tf_helpers import TOL, assert_close, energy_fd, fparam_aparam, model_dict, system

from backends.tf.model import INPUT_NAMES, CompiledModel, energy_and_forces
from backends.tf.modules import DescrptSeR, EnergyModel

OUTPUTS = ("energy", "atom_energy", "force", "virial", "atom_virial")


@pytest.fixture(scope="module")
def compiled():
    """One compiled model per kind, traced once for the whole module."""
    cache: dict[str, tuple[dict, CompiledModel]] = {}

    def get(kind: str) -> tuple[dict, CompiledModel]:
        if kind not in cache:
            data = model_dict(kind)
            cache[kind] = data, CompiledModel(EnergyModel.deserialize(data))
        return cache[kind]

    return get


@pytest.mark.parametrize("kind", ["one_side", "float32", "params"])
@pytest.mark.parametrize("geometry", ["triclinic", "cluster"])
def test_matches_dpmodel(compiled, kind, geometry):
    data, model = compiled(kind)
    sys_ = system(geometry, natoms=10, seed=3)
    fparam, aparam = fparam_aparam(data, sys_)
    reference = DPModel.deserialize(data).call(sys_.coord, sys_.atype, sys_.box, fparam, aparam, True)
    out = model.call(sys_.coord, sys_.atype, sys_.box, fparam, aparam, do_atomic_virial=True)
    tol = TOL[data["descriptor"]["precision"]]
    assert np.max(np.abs(reference["force"])) > 0.05, "forces too small to test"
    for name in OUTPUTS:
        assert_close(out[name], reference[name], tol, name)
    assert_close(out["mask"], reference["mask"], 0, "mask")


def test_virtual_atoms_match_dpmodel(compiled):
    data, model = compiled("one_side")
    sys_ = system("triclinic", natoms=10, seed=13)
    atype = sys_.atype.copy()
    atype[0, [2, 5]] = -1
    reference = DPModel.deserialize(data).call(sys_.coord, atype, sys_.box, do_atomic_virial=True)
    out = model.call(sys_.coord, atype, sys_.box, do_atomic_virial=True)
    for name in OUTPUTS:
        assert_close(out[name], reference[name], 1e-10, name)
    assert np.all(out["atom_energy"][0, [2, 5]] == 0.0)


def test_descriptor_matches_dpmodel(compiled):
    data, model = compiled("one_side")
    sys_ = system("small", seed=4)
    from dpmodel.evaluator import Evaluator

    reference = Evaluator(data={"model": data}).eval_descriptor(sys_.coord, sys_.box, sys_.atype)
    assert_close(model.eval_descriptor(sys_.coord, sys_.box, sys_.atype), reference, 1e-10, "descriptor")


@pytest.mark.parametrize("kind", ["two_side", "type_embedding"])
def test_forces_and_virial_are_energy_derivatives(compiled, kind):
    data, model = compiled(kind)
    sys_ = system("triclinic", natoms=12, seed=5)
    coord, box, atype = sys_.coord[0], sys_.box[0], sys_.atype[:1]

    def energy(c, b):
        return float(model.call(c[None], atype, b[None])["energy"][0, 0])

    out = model.call(coord[None], atype, box[None], do_atomic_virial=True)
    atoms = [0, 1, 4, 7, 11]  # both types
    force, virial = energy_fd(energy, coord, box, atoms)
    scale = np.max(np.abs(out["force"]))
    assert scale > 0.05, "forces too small to test"
    np.testing.assert_allclose(out["force"][0, atoms], force, rtol=1e-7, atol=1e-7 * scale)
    np.testing.assert_allclose(out["virial"][0], virial, rtol=1e-7, atol=1e-7 * np.max(np.abs(virial)))
    assert_close(out["atom_virial"][0].sum(axis=0), out["virial"][0], 1e-12, "sum of atomic virials")


def test_two_side_excluded_pairs_contribute_nothing(compiled):
    """Nets stored for excluded pairs are ignored (softplus(0) != 0 would show) and kept on serialize."""
    data, model = compiled("two_side")
    networks = data["descriptor"]["embeddings"]["networks"]
    assert networks[2] is None and networks[1] is None  # (0, 1) and (1, 0) excluded
    filled = copy.deepcopy(data)
    filled["descriptor"]["embeddings"]["networks"][1] = copy.deepcopy(networks[0])
    filled["descriptor"]["embeddings"]["networks"][2] = copy.deepcopy(networks[3])
    other = EnergyModel.deserialize(filled)
    assert trees_equal(other.serialize(), filled) == []
    sys_ = system("triclinic", natoms=10, seed=6)
    inputs = model.prepare(sys_.coord, sys_.box, sys_.atype)
    eager = energy_and_forces(other, *(inputs[n] for n in INPUT_NAMES))
    out = model.call(sys_.coord, sys_.atype, sys_.box)
    for name in ("atom_energy", "force", "virial"):
        assert_close(eager[name].numpy(), out[name], 1e-12, name)


def test_one_trace_for_all_frames_and_sizes(compiled):
    _, model = compiled("one_side")
    before = model.trace_count
    for kind, natoms, nframes in (("triclinic", 10, 1), ("cluster", 7, 3), ("small", 5, 2)):
        sys_ = system(kind, natoms=natoms, seed=natoms)
        model.call(sys_.coord[:nframes], sys_.atype[:nframes], None if sys_.box is None else sys_.box[:nframes])
    assert model.trace_count == max(before, 1) == 1


@pytest.mark.parametrize("kind", ["one_side", "float32", "params", "two_side", "type_embedding"])
def test_serialize_round_trip_is_exact(kind):
    data = model_dict(kind)
    model = EnergyModel.deserialize(data)
    assert all(type(v).__name__ == "ResourceVariable" for v in model.variables)
    assert trees_equal(model.serialize(), data) == []
    assert trees_equal(EnergyModel.deserialize(model.serialize()).serialize(), data) == []


def test_variables_are_trainable_parameters():
    model = EnergyModel.deserialize(model_dict("type_embedding"))
    names = [n for n, v in model.named_variables() if v.trainable]
    frozen = [n for n, v in model.named_variables() if not v.trainable]
    assert any(n.startswith("type_embedding.embedding") for n in names)
    assert {"out_bias", "out_std", "descriptor.davg", "descriptor.dstd", "fitting.bias_atom_e"} <= set(frozen)
    assert len(model.trainable_variables) == len(names)


def test_env_protection_is_refused():
    with pytest.raises(UnsupportedOptionError) as err:
        DescrptSeR(4.0, 0.5, [4, 4], env_protection=0.3)
    message = str(err.value)
    for part in ("env_protection", "0.3", "TensorFlow", "dpmodel", "PyTorch", "JAX"):
        assert part in message
    data = model_dict("one_side")
    data["descriptor"]["env_protection"] = 0.3
    with pytest.raises(UnsupportedOptionError, match="env_protection"):
        EnergyModel.deserialize(data)


@pytest.mark.parametrize("kind, option", [("two_side", "type_one_side"), ("type_embedding", "type_embedding")])
def test_tf_only_models_are_refused_elsewhere(kind, option):
    data = model_dict(kind)
    with pytest.raises(UnsupportedOptionError) as err:
        model_from_dict(data)
    assert option in str(err.value) and "TensorFlow" in str(err.value)
    for backend in ("pt", "jax", "dpmodel"):
        with pytest.raises(UnsupportedOptionError, match="TensorFlow"):
            value = data["descriptor"]["type_one_side"] if kind == "two_side" else data["type_embedding"]
            check_supported(f"model/{'descriptor/' if kind == 'two_side' else ''}{option}", value, backend)
    assert isinstance(model_from_dict(data, EnergyModel), EnergyModel)


def test_type_embedding_widths_are_checked():
    data = model_dict("type_embedding")
    data["type_embedding"]["neuron"] = [4, 6]
    data["type_embedding"]["embedding"]["neuron"] = [4, 6]
    data["type_embedding"]["embedding"]["layers"][1]["@variables"]["w"] = np.zeros((4, 6))
    data["type_embedding"]["embedding"]["layers"][1]["@variables"]["b"] = np.zeros(6)
    data["type_embedding"]["embedding"]["layers"][1]["@variables"]["idt"] = None
    with pytest.raises(ValueError, match="dim_descrpt"):
        EnergyModel.deserialize(data)


def test_compressed_two_side_model(compiled):
    """Tabulated embeddings (dpmodel.compress) run on TF too, including two-side nets (TF only)."""
    from dpmodel.compress import compress_model_dict

    data, model = compiled("two_side")
    packed = compress_model_dict(data, 0.8)
    assert packed["descriptor"]["@version"] == 3 and "compress" in packed["descriptor"]
    tabulated = EnergyModel.deserialize(packed)
    assert trees_equal(tabulated.serialize(), packed) == []
    sys_ = system("triclinic", natoms=10, seed=12)
    inputs = model.prepare(sys_.coord, sys_.box, sys_.atype)
    eager = energy_and_forces(tabulated, *(inputs[n] for n in INPUT_NAMES))
    out = model.call(sys_.coord, sys_.atype, sys_.box)
    for name in ("energy", "force", "virial"):
        assert_close(eager[name].numpy(), out[name], 1e-8, name)
