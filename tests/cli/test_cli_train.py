"""``dp train`` end to end in every installed backend, then freeze, test, show; restart; cross-backend curves."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from cli_helpers import backend_params, dp, make_case, training_skip_reason

from dpmodel.config import normalize
from dpmodel.registry import by_name
from dpmodel.training.checkpoint import read_checkpoint

COLUMNS = ("step", "rmse_val", "rmse_trn", "rmse_e_val", "rmse_e_trn", "rmse_f_val", "rmse_f_trn",
           "rmse_v_val", "rmse_v_trn", "lr")


@pytest.mark.parametrize("backend", backend_params())
def test_train_writes_lcurve_checkpoints_and_out_json(trained, backend) -> None:
    folder = trained(backend)
    table = np.genfromtxt(folder / "lcurve.out", names=True)
    assert table.dtype.names == COLUMNS
    assert table["step"].tolist() == list(range(1, 9))
    assert np.all(np.isfinite(table["rmse_trn"])) and np.all(table["lr"] > 0)
    out = json.loads((folder / "out.json").read_text())
    assert normalize(out) == out  # out.json is a complete, valid input
    assert out["model"]["descriptor"]["sel"] == [41, 16] and out["training"]["seed"] == 10
    assert out["model"]["descriptor"]["type_one_side"] is True
    assert (folder / "checkpoint").read_text().strip() == "model.ckpt-8.dp"
    assert read_checkpoint(folder / "model.ckpt-4.dp").backend == backend
    assert "s/step" in (folder / "train.log").read_text()


@pytest.mark.parametrize("backend", backend_params())
def test_freeze_test_show(trained, backend) -> None:
    folder = trained(backend)
    dp([f"--{backend}", "freeze", "-o", "frozen"], folder, check=True)
    model = f"frozen{by_name(backend).suffixes[0]}"  # no suffix given: the backend's default
    assert (folder / model).exists()
    result = dp(["test", "-m", model, "-s", "data/valid", "-n", "4", "-d", "detail"], folder, check=True)
    assert re.search(r"force\s+\d\.\d+e[-+]\d+\s+\d\.\d+e[-+]\d+\s+eV/Å", result.stdout)
    assert "virial/atom" in result.stdout
    assert np.loadtxt(folder / "detail.f.out").shape == (4 * 32, 6)
    shown = dp(["show", model, "type-map", "descriptor", "size"], folder, check=True).stdout
    assert "type-map: Cu Au" in shown and '"rcut": 5.0' in shown and "total" in shown


def test_restart_continues_the_identical_trajectory(trained, tmp_path) -> None:
    if (reason := training_skip_reason("pt")) is not None:
        pytest.skip(reason)
    full = trained("pt")
    make_case(tmp_path)
    dp(["--pt", "train", "input.json", "--restart", str(full / "model.ckpt-4.dp")], tmp_path, check=True)
    rows = np.genfromtxt(tmp_path / "lcurve.out", names=True)
    expected = np.genfromtxt(full / "lcurve.out", names=True)
    assert rows.tolist() == expected[4:].tolist()
    ends = [read_checkpoint(folder / "model.ckpt-8.dp") for folder in (full, tmp_path)]
    for key, value in ends[0].state.items():
        assert np.array_equal(value, ends[1].state[key]), key


def _curve(folder) -> dict[int, dict]:
    """Full-precision metrics from the ``-v`` log: step -> {"train": ..., "valid": ...}."""
    found = {}
    for match in re.finditer(r"metrics step=(\d+) lr=\S+ train=(\{.*?\}) valid=(\{.*?\})",
                             (folder / "train.log").read_text()):
        found[int(match.group(1))] = {"train": json.loads(match.group(2)), "valid": json.loads(match.group(3))}
    return found


def test_backends_agree_on_float64_loss_curves(trained) -> None:
    ready = [b for b in ("pt", "jax", "tf") if training_skip_reason(b) is None]
    if len(ready) < 2:
        pytest.skip(f"needs two backends that train; ready: {ready}")
    curves = {b: _curve(trained(b)) for b in ready}
    reference = curves[ready[0]]
    assert sorted(reference) == list(range(1, 9))
    for backend in ready[1:]:
        for step, row in reference.items():
            for part in ("train", "valid"):
                for key, value in row[part].items():
                    other = curves[backend][step][part][key]
                    assert other == pytest.approx(value, rel=1e-8), f"{backend} step {step} {part} {key}"


@pytest.mark.slow
def test_backends_agree_over_100_steps(tmp_path) -> None:
    ready = [b for b in ("pt", "jax", "tf") if training_skip_reason(b) is None]
    if len(ready) < 2:
        pytest.skip(f"needs two backends that train; ready: {ready}")
    curves = {}
    for backend in ready:
        folder = tmp_path / backend
        make_case(folder, numb_steps=100, disp_freq=5, save_freq=100)
        dp(["-v", "--log-path", "train.log", f"--{backend}", "train", "input.json"], folder, check=True)
        curves[backend] = _curve(folder)
    reference = curves[ready[0]]
    assert len(reference) == 21
    for backend in ready[1:]:
        for step, row in reference.items():
            for part in ("train", "valid"):
                for key, value in row[part].items():
                    assert curves[backend][step][part][key] == pytest.approx(value, rel=1e-8), \
                        f"{backend} step {step} {part} {key}"


def test_init_frz_model_and_init_model_start_from_weights(trained, tmp_path) -> None:
    if (reason := training_skip_reason("pt")) is not None:
        pytest.skip(reason)
    source = trained("pt")
    dp(["freeze", "-c", str(source), "-o", str(tmp_path / "start.dp")], tmp_path, check=True)
    make_case(tmp_path / "frz", numb_steps=2)
    dp(["--pt", "train", "input.json", "--init-frz-model", str(tmp_path / "start.dp")], tmp_path / "frz", check=True)
    make_case(tmp_path / "ckpt", numb_steps=2)
    dp(["--pt", "train", "input.json", "--init-model", str(source / "model.ckpt-8.dp")], tmp_path / "ckpt",
       check=True)
    rows = [np.genfromtxt(tmp_path / d / "lcurve.out", names=True) for d in ("frz", "ckpt")]
    assert rows[0].tolist() == rows[1].tolist()  # same weights, fresh optimizer, same batches
    assert rows[0]["step"].tolist() == [1, 2]
    start = read_checkpoint(tmp_path / "frz" / "model.ckpt-2.dp")
    assert start.step == 2 and start.min_nbor_dist == pytest.approx(2.0877, abs=1e-4)
