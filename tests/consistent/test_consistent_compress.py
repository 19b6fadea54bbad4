"""Compressed models in every backend: the same serialized tables, the same outputs, every file format.

A table whose coefficients are scaled by 1.01 is no longer the net's approximation
but is still a valid table: every backend must reproduce dpmodel's result with it
(proof that it evaluates the tables, not the nets kept beside them) and the genuine
tables must stay within the acceptance tolerances of the uncompressed model.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dpmodel.capabilities import is_supported
from dpmodel.compress import compress_model_dict
from dpmodel.errors import UnsupportedOptionError
from dpmodel.registry import for_suffix, load_model_file, save_model_file
from dpmodel.serialization import trees_equal
from grid_backends import BACKENDS, Backend
from grid_cases import Case

CASES = [
    Case("compress_exclude", descriptor={"exclude_types": [[0, 1]], "resnet_dt": True}),
    Case("compress_two_side", descriptor={"type_one_side": False, "exclude_types": [[0, 1]]}),
]
OUTPUTS = ("energy", "force", "virial", "atom_energy")
MIN_DIST = 0.9


def compressed(case: Case, scale: float = 1.0) -> dict:
    data = compress_model_dict(case.model_dict(), MIN_DIST, step=0.01)
    if scale != 1.0:
        tables = data["descriptor"]["compress"]["@variables"]["compress_data"]
        data["descriptor"]["compress"]["@variables"]["compress_data"] = [t * scale for t in tables]
    return data


def evaluate(backend: Backend, model: dict, case: Case, tmp) -> dict[str, np.ndarray]:
    system = case.system()
    out = backend.make({"model": model}, tmp).evaluate(system.coord, system.box, system.atype, None, None, False)
    return {k: np.asarray(out[k]) for k in OUTPUTS}


def reference(case: Case, tmp) -> dict[str, dict[str, np.ndarray]]:
    numpy_backend = BACKENDS[0] if case.options["model/descriptor/type_one_side"] else _backend("tf-eager")
    if numpy_backend.missing():
        pytest.skip(numpy_backend.missing())
    return {name: evaluate(numpy_backend, model, case, tmp)
            for name, model in (("plain", case.model_dict()), ("tables", compressed(case)),
                                ("scaled", compressed(case, 1.01)))}


def _backend(name: str) -> Backend:
    return next(b for b in BACKENDS if b.name == name)


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_backend_evaluates_the_serialized_tables(case, backend, tmp_path):
    if backend.missing():
        pytest.skip(backend.missing())
    if not all(is_supported(o, v, backend.capability) for o, v in case.options.items()):
        with pytest.raises(UnsupportedOptionError):
            evaluate(backend, compressed(case), case, tmp_path)
        return
    want = reference(case, tmp_path / "ref")
    natoms = case.system().atype.shape[1]
    got = evaluate(backend, compressed(case, 1.01), case, tmp_path / "scaled")
    for key in OUTPUTS:
        np.testing.assert_allclose(got[key], want["scaled"][key], rtol=0, atol=1e-10, err_msg=key)
    assert np.abs(want["scaled"]["force"] - want["plain"]["force"]).max() > 1e-4  # the tables were used
    got = evaluate(backend, compressed(case), case, tmp_path / "tables")
    assert np.abs(got["energy"] - want["plain"]["energy"]).max() / natoms < 1e-7
    assert np.abs(got["force"] - want["plain"]["force"]).max() < 1e-6
    assert np.abs(got["virial"] - want["plain"]["virial"]).max() < 1e-5


CHAIN = (".pth", ".dp", ".jax", ".savedmodel", ".pth")


@pytest.mark.slow
def test_compression_survives_every_conversion(tmp_path):
    """``.pth -> .dp -> .jax -> .savedmodel -> .pth``: same dict, same outputs (scaled tables)."""
    for suffix in set(CHAIN):
        info = for_suffix(f"model{suffix}")
        if not info.available():
            pytest.skip(f"backend {info.name} ({suffix}) is not installed")
    case = CASES[0]
    model = compressed(case, 1.01)
    want = reference(case, tmp_path / "ref")["scaled"]
    system = case.system()
    data = {"model": model, "model_def_script": {"type_map": ["A", "B"]}, "@variables": {"min_nbor_dist": MIN_DIST}}
    for step, suffix in enumerate(CHAIN):
        path = tmp_path / f"step{step}{suffix}"
        save_model_file(path, copy.deepcopy(data))
        data = load_model_file(path)
        assert trees_equal(data["model"], model) == [], f"{path.name}: the model dict changed"
        assert float(data["@variables"]["min_nbor_dist"]) == MIN_DIST
        out = for_suffix(path).module("io").Evaluator(path).evaluate(system.coord, system.box, system.atype)
        for key in ("energy", "force", "virial"):
            np.testing.assert_allclose(np.asarray(out[key]), want[key], rtol=0, atol=1e-10, err_msg=f"{path.name} {key}")


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
def test_water_compressed_matches_uncompressed_in_every_backend(backend, tmp_path):
    """Acceptance on 192-atom water frames: energy 1e-7 eV/atom, force 1e-6 eV/Å, virial 1e-5 eV."""
    from dpmodel.data import DeepmdSystem
    from dpmodel.descriptor import DescrptSeR
    from dpmodel.fitting import EnergyFitting
    from dpmodel.model import EnergyModel
    from dpmodel.stat import compute_descriptor_stat
    from dpmodel.training.neighbor_stat import neighbor_stat
    from systems import WATER, WATER_MISSING

    if not WATER.is_dir():
        pytest.skip(WATER_MISSING)
    if backend.missing():
        pytest.skip(backend.missing())
    system = DeepmdSystem(WATER / "data_1", ["O", "H"])
    batch = system.frames(np.arange(2))
    coord, atype, box = batch["coord"], batch["atype"], batch["box"]
    descriptor = DescrptSeR(6.0, 0.5, [46, 92], [5, 10, 20], seed=1)
    compute_descriptor_stat(descriptor, [(coord, atype, box)])
    fitting = EnergyFitting(2, 20, [120, 120, 120], seed=2)
    for net in fitting.nets.networks:  # forces of order 1 eV/Å
        net.layers[-1].w = net.layers[-1].w * 4000.0
    plain = EnergyModel(descriptor, fitting, ["O", "H"]).serialize()
    small = compress_model_dict(plain, neighbor_stat([system], 6.0, 2).min_dist)
    ref = backend.make({"model": plain}, tmp_path).evaluate(coord, box, atype, None, None, False)
    out = backend.make({"model": small}, tmp_path / "c").evaluate(coord, box, atype, None, None, False)
    assert np.sqrt(np.mean(np.asarray(ref["force"]) ** 2)) > 0.3
    assert np.abs(np.asarray(out["energy"]) - ref["energy"]).max() / atype.shape[1] < 1e-7
    assert np.abs(np.asarray(out["force"]) - ref["force"]).max() < 1e-6
    assert np.abs(np.asarray(out["virial"]) - ref["virial"]).max() < 1e-5
