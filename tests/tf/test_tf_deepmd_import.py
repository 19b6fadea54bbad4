"""DeePMD-kit 3.2.0 frozen TensorFlow models (``dp --tf freeze``) imported into our dict.

Cases: ``tests/reference/data/tf/<case>/`` from ``tests/reference/generate.py`` (one-side,
two-side, type embedding; water, ``sel = [46, 92]``) and, made with the same recipe (each
folder's ``input.json``; ``dp --tf train``, ``dp --tf freeze``, DeePMD-kit's ``DeepPot`` on
the first two frames of ``water/data_0``), ``tests/tf/data/deepmd_*``:

- ``two_side_exclude``: two-side nets with ``exclude_types = [[0, 1]]``;
- ``tebd_two_side``: type embedding (``neuron [2, 4]``, ``resnet_dt``, ``use_tebd_bias``,
  gelu) with two-side nets excluding ``[1, 1]``;
- ``f32_resnet``: float32 descriptor and fitting, descriptor ``resnet_dt``, fitting widths
  ``8 -> 16 -> 32 -> 32`` (TF's fitting skips only between equal widths; the import keeps
  that, where DeePMD-kit's own export adds skips with random timesteps).

Each holds ``model.pb``, ``inputs.npz``, ``expected.npz`` and, where DeePMD-kit can export
it (not with a type embedding), ``model.dp`` from ``dp convert-backend model.pb model.dp``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dpmodel import io as dpio
from dpmodel.infer import DeepPot
from dpmodel.registry import load_model_file, save_model_file
from dpmodel.serialization import trees_equal

from backends.tf import io as tfio

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parent / "reference" / "data" / "tf"
CASES = {
    "one_side": REFERENCE / "one_side",
    "two_side": REFERENCE / "two_side",
    "type_embedding": REFERENCE / "type_embedding",
    "two_side_exclude": HERE / "data" / "deepmd_two_side_exclude",
    "tebd_two_side": HERE / "data" / "deepmd_tebd_two_side",
    "f32_resnet": HERE / "data" / "deepmd_f32_resnet",
}


def case_dir(name: str) -> Path:
    folder = CASES[name]
    if not (folder / "model.pb").is_file():
        pytest.skip(f"{folder / 'model.pb'} is absent: run tests/reference/generate.py with DeePMD-kit 3.2.0 "
                    "(TensorFlow) to create the DeePMD-kit reference models")
    return folder


@pytest.mark.parametrize("name", list(CASES))
def test_import_equals_deepmd_export(name):
    folder = case_dir(name)
    data = tfio.load(folder / "model.pb")
    assert data["backend"] == "TensorFlow" and data["model_def_script"]["descriptor"]["type"] == "se_e2_r"
    assert data["model"]["descriptor"]["type_one_side"] == ("two_side" not in name)
    assert (data["model"].get("type_embedding") is not None) == (name in ("type_embedding", "tebd_two_side"))
    if not (folder / "model.dp").is_file():
        return  # DeePMD-kit refuses to export a type embedding with se_e2_r
    reference = dpio.load(folder / "model.dp")
    assert trees_equal(data["model"], reference["model"]) == []
    assert trees_equal(data["model_def_script"], reference["model_def_script"]) == []
    assert trees_equal(data.get("@variables"), reference.get("@variables")) == []


@pytest.mark.parametrize("name", list(CASES))
def test_imported_model_reproduces_deepmd(name):
    folder = case_dir(name)
    inputs, expected = np.load(folder / "inputs.npz"), np.load(folder / "expected.npz")
    coord, box, atype = inputs["coord"], inputs["box"], inputs["atype"]
    out = DeepPot(folder / "model.pb").eval(coord, box, atype, atomic=True)
    tol = 1e-5 if name == "f32_resnet" else 1e-10
    for key, value in zip(("energy", "force", "virial", "atom_energy", "atom_virial"), out):
        reference = expected[key]
        scale = np.max(np.abs(reference))
        np.testing.assert_allclose(value, reference, rtol=tol, atol=tol * scale, err_msg=key)


def test_convert_backend_from_deepmd_pb(tmp_path):
    folder = case_dir("tebd_two_side")
    data = load_model_file(folder / "model.pb")
    save_model_file(tmp_path / "out.dp", data)
    save_model_file(tmp_path / "out.yaml", load_model_file(tmp_path / "out.dp"))
    back = load_model_file(tmp_path / "out.yaml")
    assert trees_equal(back["model"], data["model"]) == []
    assert trees_equal(back["model_def_script"], data["model_def_script"]) == []


def test_dp_convert_backend_verifies_a_tf_only_deepmd_model(tmp_path):
    """``dp convert-backend model.pb out.dp`` evaluates both files (the .dp through TensorFlow)."""
    from dpmodel.cli.convert_backend import convert

    folder = case_dir("two_side_exclude")
    diffs = convert(folder / "model.pb", tmp_path / "out.dp")
    assert max(diffs.values()) < 1e-12
    assert trees_equal(dpio.load(tmp_path / "out.dp")["model"], tfio.load(folder / "model.pb")["model"]) == []
