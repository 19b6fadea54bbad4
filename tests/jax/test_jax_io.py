"""``.jax`` and ``.hlo`` files: exact round trips, DeepPot through the registry, no model classes for ``.hlo``."""

import h5py
import numpy as np
import pytest

from backends.jax import io as jax_io
from backends.jax import modules
from backends.jax.model import TRACES
from dpmodel import io as dp_io
from dpmodel.descriptor import DescrptSeR
from dpmodel.errors import ModelFileError, UnsupportedOptionError
from dpmodel.infer import DeepPot
from dpmodel.model import EnergyModel
from dpmodel.neighbor import neighbor_data
from dpmodel.registry import for_suffix
from dpmodel.serialization import trees_equal
from jax_helpers import TOL, assert_close, build, compare_outputs, precision

SUFFIXES = (".jax", ".hlo")


def envelope_of(model) -> dict:
    return {"model": model.serialize(), "model_def_script": {"type_map": ["T0", "T1"], "note": "test"},
            "@variables": {"min_nbor_dist": np.float64(0.91)}}


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_file_round_trip_is_exact(tmp_path, suffix):
    model, *_ = build("fparam_aparam")
    data = envelope_of(model)
    path = tmp_path / f"model{suffix}"
    jax_io.save(path, data)
    loaded = jax_io.load(path)
    assert {"software", "version", "time"} <= set(loaded)
    assert trees_equal({k: loaded[k] for k in data}, data) == []
    # the dpmodel reader sees the same dict: the container is the .dp layout
    if suffix == ".hlo":
        assert trees_equal(dp_io.load(path), loaded) == []
    with h5py.File(path, "r") as f:
        assert "json" in f.attrs and "jax" in f
    # and it converts back to .dp exactly
    dp_io.save(tmp_path / "back.dp", loaded)
    assert trees_equal(dp_io.load(tmp_path / "back.dp")["model"], data["model"]) == []


#: every geometry, extra inputs, a default fparam, float32 (``.jax`` shares the compilations of test_model)
FILE_CASES = [("base", "small"), ("fparam_aparam", "triclinic"), ("default_fparam", "cluster"), ("float32", "triclinic")]


@pytest.mark.parametrize("case,kind", FILE_CASES)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_deeppot_matches_dpmodel(tmp_path, case, kind, suffix):
    model, system, fparam, aparam = build(case, kind)
    path = tmp_path / f"model{suffix}"
    jax_io.save(path, envelope_of(model))
    pot = DeepPot(path)
    assert pot.backend.name == "jax" and pot.get_type_map() == ["T0", "T1"]
    energy, force, virial, atom_energy, atom_virial = pot.eval(system.coord, system.box, system.atype[0],
                                                               atomic=True, fparam=fparam, aparam=aparam)
    expected = model.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True)
    out = {"energy": energy, "force": force, "virial": virial, "atom_energy": atom_energy, "atom_virial": atom_virial}
    compare_outputs(out, expected, TOL[precision(case)])
    if case == "base":
        desc = model.descriptor
        coord_ext, atype_ext, _, nlist = neighbor_data(system.coord, system.atype, system.box, desc.rcut, desc.sel)
        assert_close(pot.eval_descriptor(system.coord, system.box, system.atype[0]),
                     desc.call(coord_ext, atype_ext, nlist), 1e-10, "descriptor")


def test_hlo_evaluates_without_building_the_model(tmp_path, monkeypatch):
    model, system, *_ = build("base", "triclinic")
    path = tmp_path / "model.hlo"
    jax_io.save(path, envelope_of(model))

    def refuse(*args, **kwargs):
        raise AssertionError("a .hlo evaluation built a model object")

    for cls in (DescrptSeR, modules.DescrptSeR):
        monkeypatch.setattr(cls, "__init__", refuse)
    for cls in (EnergyModel, modules.EnergyModel):
        monkeypatch.setattr(cls, "deserialize", classmethod(refuse))
    evaluator = jax_io.Evaluator(path)
    before = TRACES["hlo_lower"]
    expected = model.call(system.coord, system.atype, system.box)  # the NumPy model was built before patching
    for frame in range(20):  # frames of one system: one compilation of the exported program
        coord = system.coord[:1] + 0.01 * frame
        out = evaluator.evaluate(coord, system.box[:1], system.atype[:1])
    assert TRACES["hlo_lower"] - before == 1
    out = evaluator.evaluate(system.coord, system.box, system.atype)
    assert set(out) == {"energy", "force", "virial", "atom_energy"}  # atom_virial only when asked
    for key in out:
        assert_close(out[key], expected[key], 1e-10, key)


def test_type_one_side_false_cannot_be_saved(tmp_path):
    model, *_ = build("base")
    data = envelope_of(model)
    data["model"]["descriptor"]["type_one_side"] = False
    for suffix in SUFFIXES:
        with pytest.raises(UnsupportedOptionError, match="type_one_side"):
            jax_io.save(tmp_path / f"model{suffix}", data)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    model, *_ = build("base")
    path = tmp_path / "model.jax"
    jax_io.save(path, envelope_of(model))
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(jax_io, "_write_hdf5", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        jax_io.save(path, envelope_of(model))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.jax"]


def test_registry_and_errors(tmp_path):
    assert for_suffix("a/b/model.jax").name == "jax" and for_suffix("model.HLO").name == "jax"
    with pytest.raises(ModelFileError, match="does not exist"):
        jax_io.load(tmp_path / "missing.jax")
    model, *_ = build("base")
    dp_io.save(tmp_path / "model.dp", envelope_of(model))
    (tmp_path / "model.dp").rename(tmp_path / "plain.jax")
    with pytest.raises(ModelFileError, match="not a JAX model file"):
        jax_io.load(tmp_path / "plain.jax")
    with pytest.raises(ModelFileError, match=r"end in \.jax or \.hlo"):
        jax_io.save(tmp_path / "model.pth", envelope_of(model))
