"""``.savedmodel`` and ``.pb`` files: exact round trips, DeepPot, documented tensor names, atomic writes."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import tensorflow as tf

from dpmodel import io as dpio
from dpmodel.errors import ModelFileError, UnsupportedOptionError
from dpmodel.infer import DeepPot
from dpmodel.model import EnergyModel as DPModel
from dpmodel.registry import for_suffix, load_model_file, save_model_file
from dpmodel.serialization import trees_equal
from tf_helpers import assert_close, model_dict, system

from backends.tf import io as tfio
from backends.tf.model import INPUT_NAMES, OUTPUT_NAMES, energy_and_forces, prepare_inputs
from backends.tf.modules import EnergyModel

SUFFIXES = (".savedmodel", ".pb")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The ``one_side`` model as ``.dp`` and in both TensorFlow formats: ``(envelope, {suffix: path})``."""
    folder = tmp_path_factory.mktemp("tf_io")
    dpio.save(folder / "model.dp", {"model": model_dict("one_side"), "model_def_script": {"type_map": ["T0", "T1"]},
                                    "@variables": {"min_nbor_dist": 0.93}})
    data = dpio.load(folder / "model.dp")
    paths = {suffix: folder / f"model{suffix}" for suffix in SUFFIXES}
    for path in paths.values():
        tfio.save(path, data)
    return data, paths


def test_registry_owns_both_suffixes():
    assert for_suffix("a/b.savedmodel").name == for_suffix("c.PB").name == "tf"


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_file_round_trip_is_exact(saved, suffix):
    data, paths = saved
    assert trees_equal(tfio.load(paths[suffix]), data) == []
    assert trees_equal(load_model_file(paths[suffix]), data) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_deeppot_matches_dpmodel(saved, suffix):
    data, paths = saved
    sys_ = system("triclinic", natoms=11, seed=8)
    reference = DPModel.deserialize(data["model"]).call(sys_.coord, sys_.atype, sys_.box, do_atomic_virial=True)
    dp = DeepPot(paths[suffix])
    for call in range(3):  # the first call runs the graph, later ones its XLA compilation (backends.tf.xla)
        energy, force, virial, atom_energy, atom_virial = dp.eval(sys_.coord, sys_.box, sys_.atype[0], atomic=True)
        for name, value in (("energy", energy), ("force", force), ("virial", virial), ("atom_energy", atom_energy),
                            ("atom_virial", atom_virial)):
            assert_close(value, reference[name], 1e-10, f"{name}, call {call}")
    assert dp.evaluator._lower.xla.compiled_calls == 2
    descriptor = DPModel.deserialize(data["model"]).descriptor
    from dpmodel.neighbor import neighbor_data

    coord_ext, atype_ext, _, nlist = neighbor_data(sys_.coord, sys_.atype, sys_.box, 4.0, descriptor.sel)
    assert_close(dp.eval_descriptor(sys_.coord, sys_.box, sys_.atype), descriptor.call(coord_ext, atype_ext, nlist),
                 1e-10, "descriptor")


def test_pb_is_a_plain_graph_def_with_documented_names(saved):
    _, paths = saved
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(paths[".pb"].read_bytes())
    placeholders = {n.name for n in graph_def.node if n.op == "Placeholder"}
    assert placeholders == {f"i_{n}" for n in INPUT_NAMES}
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    for name in (*OUTPUT_NAMES, "descriptor"):
        assert graph.get_tensor_by_name(f"o_{name}:0") is not None
    payload = graph.get_tensor_by_name(f"{tfio.PAYLOAD_NODE}:0")
    assert payload.dtype == tf.string


def test_savedmodel_signatures_and_asset(saved):
    data, paths = saved
    path = paths[".savedmodel"]
    assert (path / "assets" / tfio.PAYLOAD_ASSET).is_file()
    loaded = tf.saved_model.load(str(path))
    lower = loaded.signatures["serving_default"]
    assert set(lower.structured_input_signature[1]) == set(INPUT_NAMES)
    assert set(lower.structured_outputs) == set(OUTPUT_NAMES)
    sys_ = system("cluster", natoms=6, seed=9)
    inputs = prepare_inputs(sys_.coord, None, sys_.atype, 4.0, data["model"]["descriptor"]["sel"])
    out = lower(**{k: tf.constant(v) for k, v in inputs.items()})
    reference = DPModel.deserialize(data["model"]).call(sys_.coord, sys_.atype)
    assert_close(out["force"].numpy(), reference["force"], 1e-10, "force")


@pytest.mark.parametrize("kind", ["two_side", "type_embedding"])
def test_tf_only_models_convert_exactly_between_formats(tmp_path, kind):
    data = {"model": model_dict(kind), "model_def_script": {}}
    chain = [tmp_path / "a.dp", tmp_path / "b.pb", tmp_path / "c.savedmodel", tmp_path / "d.yaml"]
    save_model_file(chain[0], data)
    current = load_model_file(chain[0])
    for path in chain[1:]:
        save_model_file(path, current)
        loaded = load_model_file(path)
        assert trees_equal(loaded, current) == [], path.suffix
        current = loaded
    assert trees_equal(current["model"], data["model"]) == []
    sys_ = system("triclinic", natoms=9, seed=10)
    inputs = prepare_inputs(sys_.coord, sys_.box, sys_.atype, 4.0, data["model"]["descriptor"]["sel"])
    eager = energy_and_forces(EnergyModel.deserialize(data["model"]), *(inputs[n] for n in INPUT_NAMES))
    path = chain[1] if kind == "two_side" else chain[2]  # one format each; both run the one-side model above
    out = tfio.Evaluator(path).evaluate(sys_.coord, sys_.box, sys_.atype, atomic=True)
    for name in ("energy", "force", "virial", "atom_virial"):
        assert_close(out[name], eager[name].numpy(), 1e-12, f"{path.suffix} {name}")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_refused_model_writes_nothing(saved, tmp_path, suffix):
    data, paths = saved
    bad = copy.deepcopy(data)
    bad["model"]["descriptor"]["env_protection"] = 0.5
    fresh = tmp_path / f"new{suffix}"
    with pytest.raises(UnsupportedOptionError, match="env_protection"):
        tfio.save(fresh, bad)
    assert os.listdir(tmp_path) == []
    before = tfio.load(paths[suffix])
    with pytest.raises(UnsupportedOptionError):
        tfio.save(paths[suffix], bad)
    assert trees_equal(tfio.load(paths[suffix]), before) == []
    assert sorted(p.name for p in paths[suffix].parent.iterdir() if p.name.startswith(".")) == []


def test_not_a_model_is_a_clear_error(tmp_path):
    graph = tf.Graph()
    with graph.as_default():
        tf.constant(1.0, name="x")
    (tmp_path / "other.pb").write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(ModelFileError, match="neither"):
        tfio.load(tmp_path / "other.pb")
    (tmp_path / "empty.savedmodel").mkdir()
    with pytest.raises(ModelFileError, match="asset"):
        tfio.load(tmp_path / "empty.savedmodel")
    (tmp_path / "junk.pb").write_bytes(b"\xff\x00 not a protobuf")
    with pytest.raises(ModelFileError):
        tfio.load(tmp_path / "junk.pb")


def test_payload_encoding_is_bit_exact():
    rng = np.random.default_rng(0)
    data = {"@variables": {"a": rng.normal(size=(3, 2)), "b": np.float32(np.pi), "c": np.arange(4, dtype=np.int32),
                           "d": 0.1, "e": None, "f": np.array([np.nan, -0.0, np.inf])}, "x": [1, "y", None]}
    back = tfio.decode(tfio.encode(data))
    assert trees_equal(back, data) == []
    assert type(back["@variables"]["b"]) is np.float32 and back["@variables"]["d"] == 0.1


@pytest.mark.parametrize("kind", ["two_side", "type_embedding"])
def test_deeppot_evaluates_a_tf_only_dp_file_with_tensorflow(tmp_path, kind):
    """A neutral .dp whose model dpmodel cannot run goes to the backend that implements it."""
    data = {"model": model_dict(kind), "model_def_script": {}}
    save_model_file(tmp_path / "model.dp", data)
    save_model_file(tmp_path / "model.pb", data)
    dp = DeepPot(tmp_path / "model.dp")
    assert dp.backend.name == "tf"
    sys_ = system("triclinic", natoms=9, seed=10)
    got = dp.eval(sys_.coord, sys_.box, sys_.atype[0])
    expected = DeepPot(tmp_path / "model.pb").eval(sys_.coord, sys_.box, sys_.atype[0])
    for name, a, b in zip(("energy", "force", "virial"), got, expected):
        assert_close(a, b, 1e-12, name)


@pytest.mark.parametrize("setting, compiled", [(None, 2), ("0", 0)])
def test_xla_takes_over_recurring_shapes_unless_turned_off(saved, monkeypatch, setting, compiled):
    """A model built from its dict: the graph for a shape's first call, XLA from the second (``DP_TF_XLA=0``: never)."""
    if setting is not None:
        monkeypatch.setenv("DP_TF_XLA", setting)
    data, _ = saved
    evaluator = tfio.Evaluator(data=data)
    sys_ = system("triclinic", natoms=11, seed=8)
    outputs = [evaluator.evaluate(sys_.coord, sys_.box, sys_.atype) for _ in range(3)]
    assert evaluator._lower.xla.compiled_calls == compiled
    for out in outputs[1:]:
        for name in ("energy", "force", "virial"):
            assert_close(out[name], outputs[0][name], 1e-12, name)
