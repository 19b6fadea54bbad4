"""dpmodel loads DeePMD-kit 3.2.0 energy-model files and reproduces its numbers.

Expected energies, forces, virials and atomic values were computed by DeePMD-kit's
PyTorch backend (``tests/reference/generate.py``); dpmodel computes forces analytically.
"""

from pathlib import Path

import numpy as np
import pytest

from dpmodel import io
from dpmodel.infer import DeepPot
from dpmodel.model_factory import model_from_dict
from dpmodel.serialization import trees_equal

ROOT = Path(__file__).parent / "data" / "model"
CASES = sorted(p for p in ROOT.iterdir() if (p / "model.dp").exists()) if ROOT.is_dir() else []
KEYS = ("energy", "force", "virial", "atom_energy", "atom_virial")


def tolerance(data: dict) -> float:
    return 1e-5 if data["model"]["descriptor"]["precision"] == "float32" else 1e-10


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_outputs_match_deepmd(case):
    data = io.load(case / "model.dp")
    inputs, expected = np.load(case / "inputs.npz"), np.load(case / "expected.npz")
    box = inputs["box"] if "box" in inputs else None
    out = DeepPot(case / "model.dp").eval(inputs["coord"], box, inputs["atype"], atomic=True)
    tol = tolerance(data)
    for key, value in zip(KEYS, out):
        scale = max(1.0, np.abs(expected[key]).max())
        np.testing.assert_allclose(value, expected[key].reshape(value.shape), rtol=0, atol=tol * scale,
                                   err_msg=f"{case.name}: {key}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_deepmd_model_round_trips_exactly(case, tmp_path):
    data = io.load(case / "model.dp")
    model = model_from_dict(data["model"])
    assert trees_equal(model.serialize(), data["model"]) == []
    io.save(tmp_path / "ours.dp", {**{k: v for k, v in data.items() if k not in ("software", "version", "time")}})
    again = io.load(tmp_path / "ours.dp")
    assert trees_equal(again["model"], data["model"]) == []
    assert again["model_def_script"] == data["model_def_script"]


def test_yaml_written_by_deepmd_loads():
    path = ROOT / "water_pbc" / "model.yaml"
    if not path.exists():
        pytest.skip(f"{path} has not been generated")
    assert trees_equal(io.load(path)["model"], io.load(ROOT / "water_pbc" / "model.dp")["model"]) == []


NATIVE_SUFFIXES = [".pth", ".jax", ".hlo", ".savedmodel", ".pb"]


@pytest.mark.parametrize("suffix", NATIVE_SUFFIXES)
@pytest.mark.parametrize("case", [c for c in CASES if c.name in ("water_pbc", "water_cluster")],
                         ids=lambda c: c.name)
def test_converted_deepmd_model_reproduces_deepmd(case, suffix, tmp_path):
    """A DeePMD-kit ``.dp`` converted to each native format gives DeePMD-kit's numbers."""
    from dpmodel.registry import for_suffix, save_model_file

    info = for_suffix(f"model{suffix}")
    if not info.available():
        pytest.skip(f"backend {info.name} is not installed")
    save_model_file(tmp_path / f"model{suffix}", io.load(case / "model.dp"))
    inputs, expected = np.load(case / "inputs.npz"), np.load(case / "expected.npz")
    box = inputs["box"] if "box" in inputs else None
    out = DeepPot(tmp_path / f"model{suffix}").eval(inputs["coord"], box, inputs["atype"], atomic=True)
    for key, value in zip(KEYS, out):
        scale = max(1.0, np.abs(expected[key]).max())
        np.testing.assert_allclose(value, expected[key].reshape(value.shape), rtol=0, atol=1e-10 * scale,
                                   err_msg=f"{case.name} via {suffix}: {key}")
