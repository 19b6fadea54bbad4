"""serialize -> deserialize -> serialize, and .dp / .yaml files, are exact."""

import h5py
import numpy as np
import pytest

from dpmodel import io
from dpmodel.descriptor import DescrptSeR
from dpmodel.errors import ModelFileError, SchemaVersionError
from dpmodel.model import EnergyModel
from dpmodel.neighbor import neighbor_data
from dpmodel.serialization import trees_equal
from systems import make_model, random_system


@pytest.fixture(params=["float64", "float32"])
def model(request):
    system = random_system("triclinic", seed=1)
    return make_model(system, descriptor_options={"precision": request.param, "resnet_dt": True,
                                                  "exclude_types": [[0, 1]]},
                      fitting_options={"precision": request.param})


def test_descriptor_round_trip_is_exact(model):
    data = model.descriptor.serialize()
    again = DescrptSeR.deserialize(data).serialize()
    assert trees_equal(again, data) == []
    assert data["@class"] == "Descriptor" and data["type"] == "se_r" and data["@version"] == 2
    assert data["@variables"]["davg"].shape == (2, 60, 1)


def test_model_round_trip_gives_identical_outputs(model):
    system = random_system("triclinic", seed=2)
    data = model.serialize()
    clone = EnergyModel.deserialize(data)
    assert trees_equal(clone.serialize(), data) == []
    a = model.call(system.coord, system.atype, system.box, do_atomic_virial=True)
    b = clone.call(system.coord, system.atype, system.box, do_atomic_virial=True)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("suffix", [".dp", ".yaml", ".yml"])
def test_files_round_trip_bitwise(model, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    io.save(path, {"model": model.serialize(), "model_def_script": {"type_map": ["T0", "T1"]}})
    data = io.load(path)
    assert data["software"] == io.SOFTWARE and "time" in data and "version" in data
    assert trees_equal(data["model"], model.serialize()) == []


def test_dp_layout_is_deepmd_v3(model, tmp_path):
    path = tmp_path / "model.dp"
    io.save(path, {"model": model.serialize()})
    with h5py.File(path) as f:
        import json

        tree = json.loads(f.attrs["json"])
        names = sorted(f.keys())
    assert names[0] == "variable_0000" and all(n.startswith("variable_") for n in names)
    assert tree["model"]["descriptor"]["@variables"]["davg"].startswith("/variable_")
    assert tree["model"]["descriptor"]["embeddings"]["networks"][0]["layers"][0]["@variables"]["idt"] is None


def test_failed_write_keeps_existing_file(model, tmp_path):
    path = tmp_path / "model.dp"
    io.save(path, {"model": model.serialize()})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        io.save(path, {"model": model.serialize(), "bad": object()})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.dp"]


def test_unsupported_version_is_refused(model):
    data = model.descriptor.serialize()
    data["@version"] = 9
    with pytest.raises(SchemaVersionError, match="9"):
        DescrptSeR.deserialize(data)


def test_bad_files_raise_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        io.load(tmp_path / "missing.dp")
    (tmp_path / "junk.dp").write_bytes(b"not hdf5")
    with pytest.raises(ModelFileError, match="junk.dp"):
        io.load(tmp_path / "junk.dp")
    with pytest.raises(ModelFileError, match=".dp, .yaml"):
        io.save(tmp_path / "x.txt", {})


def test_yaml_never_executes_code(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ModelFileError):
        io.load(path)


def test_descriptor_same_after_file_round_trip(model, tmp_path):
    system = random_system("cluster", seed=5)
    path = tmp_path / "d.yaml"
    io.save(path, {"model": model.descriptor.serialize()})
    loaded = DescrptSeR.deserialize(io.load(path)["model"])
    ext = neighbor_data(system.coord, system.atype, None, 4.0, loaded.sel)
    np.testing.assert_array_equal(loaded.call(*ext[:2], ext[3]), model.descriptor.call(*ext[:2], ext[3]))
