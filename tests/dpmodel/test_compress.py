"""Model compression: compressed vs uncompressed models, files, refusals (tables: test_tabulate.py)."""

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from dpmodel import io
from dpmodel.compress import compress_file, compress_model_dict
from dpmodel.data import DeepmdSystem
from dpmodel.descriptor import DescrptSeR
from dpmodel.env_mat import pair_displacements
from dpmodel.errors import ConfigError, SchemaVersionError, UnsupportedOptionError
from dpmodel.model import EnergyModel
from dpmodel.neighbor import neighbor_data
from dpmodel.serialization import trees_equal
from dpmodel.training.neighbor_stat import neighbor_stat
from systems import WATER, WATER_MISSING, make_model, random_system

MIN_DIST = 0.9  # random systems keep atoms ~1 Å apart
REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "compressed" / "water_pbc"


def compressed_copy(model: EnergyModel, distance: float = MIN_DIST, **options) -> EnergyModel:
    out = type(model).deserialize(model.serialize())
    out.descriptor.enable_compression(distance, **options)
    return out


def assert_outputs_close(out, ref, natoms: int, energy=1e-7, force=1e-6, virial=1e-5):
    """Acceptance tolerances: energy per atom eV, force eV/Å, virial eV."""
    assert np.abs(out["energy"] - ref["energy"]).max() / natoms < energy
    assert np.abs(out["force"] - ref["force"]).max() < force
    assert np.abs(out["virial"] - ref["virial"]).max() < virial


# ---------------------------------------------------------------------------------- models
MODEL_CASES = {
    "triclinic": (dict(kind="triclinic", natoms=24), {}),
    "small_box": (dict(kind="small"), {}),
    "cluster": (dict(kind="cluster", natoms=14), {}),
    "exclude_resnet_gelu": (dict(kind="triclinic", natoms=20),
                            {"exclude_types": [[0, 1]], "resnet_dt": True, "activation_function": "gelu"}),
}


@pytest.fixture(params=list(MODEL_CASES), scope="module")
def model_case(request):
    system_options, descriptor_options = MODEL_CASES[request.param]
    system = random_system(**system_options, nframes=2, seed=7)
    model = make_model(system, descriptor_options=descriptor_options)
    return model, compressed_copy(model), system


def test_compressed_matches_uncompressed(model_case):
    model, small, system = model_case
    ref = model.call(system.coord, system.atype, system.box, do_atomic_virial=True)
    out = small.call(system.coord, system.atype, system.box, do_atomic_virial=True)
    assert np.abs(ref["force"]).max() > 0.01  # a meaningful comparison
    assert_outputs_close(out, ref, system.atype.shape[1], 1e-10, 1e-9, 1e-8)
    np.testing.assert_allclose(out["atom_virial"], ref["atom_virial"], rtol=0, atol=1e-8)


def test_compressed_forces_are_the_energy_gradient(model_case):
    _, small, system = model_case
    out = small.call(system.coord, system.atype, system.box)
    step = 1e-5
    for atom in (0, 3, system.atype.shape[1] - 1):
        for axis in range(3):
            plus, minus = system.coord.copy(), system.coord.copy()
            plus[:, atom, axis] += step
            minus[:, atom, axis] -= step
            fd = -(small.call(plus, system.atype, system.box)["energy"]
                   - small.call(minus, system.atype, system.box)["energy"])[:, 0] / (2 * step)
            scale = np.abs(out["force"]).max()
            np.testing.assert_allclose(out["force"][:, atom, axis], fd, rtol=0, atol=1e-7 * scale)


def test_float32_descriptor_compresses():
    system = random_system("triclinic", natoms=16, nframes=1, seed=2)
    model = make_model(system, descriptor_options={"precision": "float32"})
    small = compressed_copy(model)
    assert small.descriptor.tables[0].data.dtype == np.float32
    ref, out = model.call(system.coord, system.atype, system.box), small.call(system.coord, system.atype, system.box)
    assert_outputs_close(out, ref, 16, 1e-5, 1e-4, 1e-3)


class TwoSideDescriptor(DescrptSeR):
    """The TensorFlow backend's view: ``type_one_side = false`` allowed."""

    backend = "tf"


class TwoSideModel(EnergyModel):
    descriptor_class = TwoSideDescriptor


def test_two_side_tables_skip_excluded_pairs():
    system = random_system("triclinic", natoms=20, nframes=1, seed=4)
    model = make_model(system, descriptor_class=TwoSideDescriptor,
                       descriptor_options={"type_one_side": False, "exclude_types": [[0, 1]]})
    model.__class__ = TwoSideModel
    small = compressed_copy(model)
    tables = small.descriptor.tables
    assert [t is None for t in tables] == [False, True, True, False]
    compress = small.descriptor.serialize()["compress"]["@variables"]
    assert [a.size for a in compress["compress_info"]] == [6, 0, 0, 6]
    ref, out = model.call(system.coord, system.atype, system.box), small.call(system.coord, system.atype, system.box)
    assert_outputs_close(out, ref, 20, 1e-10, 1e-9, 1e-8)


# ---------------------------------------------------------------------------------- serialization
@pytest.fixture(scope="module")
def small_model():
    system = random_system("triclinic", natoms=16, nframes=1, seed=5)
    model = make_model(system)
    return model, compressed_copy(model, step=0.1, extrapolate=4, check_frequency=10), system


def test_serialized_layout_is_deepmd_head(small_model):
    model, small, _ = small_model
    assert model.descriptor.serialize()["@version"] == 2 and "compress" not in model.descriptor.serialize()
    desc = small.descriptor.serialize()
    assert desc["@version"] == 3
    variables = desc["compress"]["@variables"]
    assert len(variables["compress_data"]) == len(variables["compress_info"]) == 2
    for data, info in zip(variables["compress_data"], variables["compress_info"]):
        ll, uu = info[0], info[1]
        np.testing.assert_array_equal(info, [ll, uu, 4 * uu, 0.1, 1.0, 10])
        assert data.shape == (int((uu - ll) / 0.1 + 3 * uu / 1.0), 6 * 24) and data.dtype == np.float64


@pytest.mark.parametrize("suffix", [".dp", ".yaml"])
def test_compressed_model_round_trips_exactly(small_model, tmp_path, suffix):
    model, _, system = small_model
    small = compressed_copy(model, step=0.5, extrapolate=2, check_frequency=3)  # small enough for YAML
    data = small.serialize()
    assert trees_equal(EnergyModel.deserialize(data).serialize(), data) == []
    path = tmp_path / f"model{suffix}"
    io.save(path, {"model": data, "@variables": {"min_nbor_dist": MIN_DIST}})
    back = io.load(path)
    assert trees_equal(back["model"], data) == []
    again = EnergyModel.deserialize(back["model"])
    np.testing.assert_array_equal(again.call(system.coord, system.atype, system.box)["force"],
                                  small.call(system.coord, system.atype, system.box)["force"])


def test_descriptor_versions(small_model):
    model, _, _ = small_model
    data = model.descriptor.serialize()
    DescrptSeR.deserialize({**data, "@version": 3})  # @version 3 without tables reads
    with pytest.raises(SchemaVersionError, match="version 4"):
        DescrptSeR.deserialize({**data, "@version": 4})
    with pytest.raises(ValueError, match="compress_data and compress_info"):
        DescrptSeR.deserialize({**data, "@version": 3, "compress": {"@variables": {"compress_data": []}}})


# ---------------------------------------------------------------------------------- compress_model_dict
def test_compress_model_dict_equals_enable_compression(small_model):
    model, _, _ = small_model
    data = model.serialize()
    before = copy.deepcopy(data)
    out = compress_model_dict(data, MIN_DIST, 0.1, 4, 10)
    assert trees_equal(data, before) == []  # input untouched
    expected = compressed_copy(model, step=0.1, extrapolate=4, check_frequency=10).serialize()
    assert trees_equal(out, expected) == []


def test_type_embedding_is_refused(small_model):
    data = {**small_model[0].serialize(), "type_embedding": {"neuron": [8]}}
    with pytest.raises(UnsupportedOptionError, match="type_embedding"):
        compress_model_dict(data, MIN_DIST)


def test_type_one_side_false_only_where_the_backend_holds_it():
    system = random_system("triclinic", natoms=12, nframes=1, seed=6)
    data = make_model(system, descriptor_class=TwoSideDescriptor, descriptor_options={"type_one_side": False}).serialize()
    with pytest.raises(UnsupportedOptionError, match="type_one_side.*--tf"):
        compress_model_dict(data, MIN_DIST, backend="pt")
    assert compress_model_dict(data, MIN_DIST, backend="tf")["descriptor"]["@version"] == 3


# ---------------------------------------------------------------------------------- overflow
def table_warnings(caplog) -> list[logging.LogRecord]:
    """Warnings of the table logger only (other loggers may be configured by other tests)."""
    return [r for r in caplog.records if r.name == "dpmodel.table" and r.levelno >= logging.WARNING]


def test_overflow_is_counted_and_reported(caplog):
    system = random_system("triclinic", natoms=16, nframes=1, seed=8)
    model = make_model(system)
    small = compressed_copy(model, 2.5, extrapolate=1, check_frequency=2)  # range ends far above the data
    with caplog.at_level(logging.WARNING, logger="dpmodel.table"):
        small.call(system.coord, system.atype, system.box)
        assert not table_warnings(caplog)  # first evaluation: not a check
        small.call(system.coord, system.atype, system.box)
    assert any("outside the compressed table range" in r.getMessage() for r in table_warnings(caplog))
    assert sum(t.overflow for t in small.descriptor.tables) > 0
    quiet = compressed_copy(model, 2.5, extrapolate=1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dpmodel.table"):
        quiet.call(system.coord, system.atype, system.box)
    assert not table_warnings(caplog)


# ---------------------------------------------------------------------------------- namespaces
@pytest.mark.parametrize("name", ["torch", "array_api_strict"])
def test_compressed_evaluation_is_backend_neutral(small_model, name):
    xp = pytest.importorskip(name, reason=f"{name} is not installed")
    convert = xp.from_numpy if name == "torch" else xp.asarray
    _, small, system = small_model
    ref = small.call(system.coord, system.atype, system.box)
    out = small.call(convert(system.coord), convert(system.atype), convert(system.box))
    for key in ("energy", "force", "virial"):
        assert type(out[key]) is type(convert(ref[key]))
        np.testing.assert_allclose(np.asarray(out[key]), ref[key], rtol=0, atol=1e-12)


def test_jax_jit_and_autodiff_of_the_table(small_model):
    """Under ``jax.jit``, energy equals NumPy's and ``jax.grad`` equals the analytic pair gradient."""
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    _, small, system = small_model
    coord_ext, atype_ext, _, nlist = neighbor_data(system.coord, system.atype, system.box, small.get_rcut(),
                                                   small.get_sel())
    diff = pair_displacements(coord_ext, nlist)
    atom_energy, _, pair_grad, _ = small.atomic_energy_from_pairs(diff, atype_ext, nlist, need_grad=True)
    with jax.enable_x64(True):
        jnp = jax.numpy
        energy = jax.jit(lambda d: jnp.sum(small.atomic_energy_from_pairs(d, jnp.asarray(atype_ext),
                                                                           jnp.asarray(nlist))[0]))
        value, grad = jax.value_and_grad(energy)(jnp.asarray(diff))
    np.testing.assert_allclose(float(value), atom_energy.sum(), rtol=1e-13)  # table sums in another order (CSR vs dense product)
    np.testing.assert_allclose(np.asarray(grad), pair_grad, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------- files and CLI core
def _write_npy_system(path: Path, system, type_map):
    path.mkdir(parents=True)
    np.savetxt(path / "type.raw", system.atype[0], fmt="%d")
    (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    (path / "set.000").mkdir()
    np.save(path / "set.000" / "coord.npy", system.coord.reshape(len(system.coord), -1))
    np.save(path / "set.000" / "box.npy", system.box)


def test_compress_file_uses_recorded_distance_or_training_script(small_model, tmp_path):
    model, _, system = small_model
    source = tmp_path / "frozen.dp"
    io.save(source, {"model": model.serialize(), "model_def_script": {}})
    with pytest.raises(ConfigError, match="-t input.json"):
        compress_file(source, tmp_path / "out.dp")
    _write_npy_system(tmp_path / "data" / "sys", system, model.type_map)
    script = tmp_path / "input.json"
    script.write_text(json.dumps({
        "model": {"type_map": model.type_map, "descriptor": {"type": "se_e2_r", "sel": model.get_sel(), "rcut": 4.0},
                  "fitting_net": {}},
        "learning_rate": {"start_lr": 1e-3}, "loss": {},
        "training": {"training_data": {"systems": ["data/sys"]}, "numb_steps": 1}}))
    written = compress_file(source, tmp_path / "out.yaml", step=0.5, training_script=script)
    distance = neighbor_stat([DeepmdSystem(tmp_path / "data" / "sys", model.type_map)], 4.0, 2).min_dist
    assert written["@variables"]["min_nbor_dist"] == distance
    back = io.load(tmp_path / "out.yaml")
    assert trees_equal(back["model"], compress_model_dict(model.serialize(), distance, 0.5)) == []
    again = compress_file(tmp_path / "out.yaml", tmp_path / "again.dp", step=0.5)  # recorded distance
    assert trees_equal(again["model"], back["model"]) == []


# ---------------------------------------------------------------------------------- DeePMD-kit 3.2.0
@pytest.mark.skipif(not (REFERENCE / "model.dp").is_file(), reason="run tests/reference/generate_compressed.py")
def test_deepmd_compressed_file_loads_and_matches():
    data = io.load(REFERENCE / "model.dp")
    meta = json.loads((REFERENCE / "meta.json").read_text())["parameters"]
    inputs, expected = np.load(REFERENCE / "inputs.npz"), np.load(REFERENCE / "expected.npz")
    model = EnergyModel.deserialize(data["model"])
    assert model.descriptor.tables is not None
    nf = inputs["coord"].shape[0]
    atype = np.tile(inputs["atype"], (nf, 1))
    out = model.call(inputs["coord"], atype, inputs["box"])
    np.testing.assert_allclose(out["energy"], expected["compressed_energy"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["atom_energy"], expected["compressed_atom_energy"], rtol=0, atol=1e-12)
    # our tabulation of the same nets: same info, same table values
    ours = EnergyModel.deserialize(data["model"])
    ours.descriptor.enable_compression(meta["min_nbor_dist"], meta["table_stride_1"], meta["table_extrapolate"])
    for mine, theirs in zip(ours.descriptor.tables, model.descriptor.tables):
        assert mine.info == theirs.info and mine.data.shape == theirs.data.shape
        x = np.random.default_rng(0).uniform(mine.info.lower, mine.info.bound, (3000, 1))
        for a, b in zip(mine.call_with_derivatives(x), theirs.call_with_derivatives(x)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-11)
    assert trees_equal(ours.serialize()["fitting"], data["model"]["fitting"]) == []


# ---------------------------------------------------------------------------------- water
@pytest.mark.skipif(not WATER.is_dir(), reason=WATER_MISSING)
def test_water_compressed_matches_uncompressed():
    from dpmodel.fitting import EnergyFitting
    from dpmodel.stat import compute_descriptor_stat

    systems = [DeepmdSystem(WATER / name, ["O", "H"]) for name in ("data_0", "data_1")]
    batches = [s.frames(np.arange(2)) for s in systems]
    frames = [(b["coord"], b["atype"], b["box"]) for b in batches]
    descriptor = DescrptSeR(6.0, 0.5, [46, 92], [5, 10, 20], seed=1)
    compute_descriptor_stat(descriptor, frames)
    fitting = EnergyFitting(2, 20, [120, 120, 120], seed=2)
    for fit_net in fitting.nets.networks:  # forces of order 1 eV/Å, like a trained water model
        fit_net.layers[-1].w = fit_net.layers[-1].w * 4000.0
    model = EnergyModel(descriptor, fitting, ["O", "H"])
    small = compressed_copy(model, neighbor_stat(systems, 6.0, 2).min_dist)
    for coord, atype, box in frames:
        ref, out = model.call(coord, atype, box), small.call(coord, atype, box)
        assert np.sqrt(np.mean(ref["force"] ** 2)) > 0.3
        assert_outputs_close(out, ref, atype.shape[1])
    coord, atype, box = (a[:1] for a in frames[0])
    force, step = small.call(coord, atype, box)["force"], 1e-4  # |E| ~ 1e5 eV: a smaller step is round-off
    for atom, axis in ((0, 0), (1, 2), (100, 1), (191, 2)):
        plus, minus = coord.copy(), coord.copy()
        plus[0, atom, axis] += step
        minus[0, atom, axis] -= step
        fd = -(small.call(plus, atype, box)["energy"] - small.call(minus, atype, box)["energy"])[0, 0] / (2 * step)
        assert abs(fd - force[0, atom, axis]) <= 1e-7 * np.abs(force).max()
