"""``dp`` commands that need no training: version, help, neighbor-stat, convert-backend, check-consistency."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from cli_helpers import EXAMPLE, dp, make_case, training_skip_reason

from dpmodel import io
from dpmodel.training.init import build_model


def _model_file(path) -> None:
    """A small random model written as a .dp file."""
    model_cfg = {"type_map": ["Cu", "Au"], "atom_exclude_types": [], "pair_exclude_types": [],
                 "descriptor": {"type": "se_e2_r", "sel": [8, 4], "rcut": 4.0, "rcut_smth": 1.0, "neuron": [4, 8],
                                "type_one_side": True, "seed": 1},
                 "fitting_net": {"neuron": [8, 8], "seed": 2}}
    model = build_model(model_cfg).serialize()
    model["@variables"]["out_bias"] = np.array([[[-3.5], [-4.0]]])
    io.save(path, {"model": model, "model_def_script": model_cfg})


def test_version_and_usage(tmp_path) -> None:
    result = dp(["--version"], tmp_path, check=True)
    assert result.stdout.startswith("dp (dpmodel-se-r)")
    assert dp([], tmp_path).returncode == 2


def test_neighbor_stat(tmp_path) -> None:
    out = dp(["neighbor-stat", "-s", str(EXAMPLE / "data"), "-r", "5.0", "-t", "Cu", "Au"], tmp_path, check=True)
    assert "min_nbor_dist: 2.0877" in out.stdout and "max_nbor_size: [37, 14]" in out.stdout
    assert "sel (auto): [40, 16]" in out.stdout


def test_convert_backend_round_trip(tmp_path) -> None:
    _model_file(tmp_path / "m.dp")
    dp(["convert-backend", "m.dp", "m.yaml"], tmp_path, check=True)
    assert io.load(tmp_path / "m.yaml")["model"]["type_map"] == ["Cu", "Au"]
    if training_skip_reason("pt") is None:
        dp(["convert-backend", "m.yaml", "m.pth"], tmp_path, check=True)
        assert (tmp_path / "m.pth").is_file()
    result = dp(["convert-backend", "m.dp", "m.xyz"], tmp_path)
    assert result.returncode == 1 and "m.xyz" in result.stderr and not (tmp_path / "m.xyz").exists()


def test_convert_refuses_an_output_that_differs(tmp_path, monkeypatch) -> None:
    from dpmodel import registry
    from dpmodel.cli.convert_backend import convert

    _model_file(tmp_path / "m.dp")
    original = registry.save_model_file

    def corrupted(path, data):
        data["model"]["@variables"]["out_bias"] = data["model"]["@variables"]["out_bias"] + 1e-3
        original(path, data)

    monkeypatch.setattr(registry, "save_model_file", corrupted)
    with pytest.raises(ValueError, match=r"does not reproduce .*energy [\d.e+-]+"):
        convert(tmp_path / "m.dp", tmp_path / "out.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.dp"]


@pytest.mark.slow
def test_check_consistency(tmp_path) -> None:
    _model_file(tmp_path / "m.dp")
    result = dp(["check-consistency", "m.dp"], tmp_path, check=True)
    assert "status" in result.stdout and "FAILED" not in result.stdout


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_restart_finishes(tmp_path) -> None:
    if (reason := training_skip_reason("pt")) is not None:
        pytest.skip(reason)
    make_case(tmp_path, numb_steps=30, save_freq=100)
    process = subprocess.Popen([sys.executable, "-m", "dpmodel.cli", "--pt", "train", "input.json"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lcurve = tmp_path / "lcurve.out"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if lcurve.is_file() and len(lcurve.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 130, stderr
    assert "checkpoint saved to" in stderr and "Traceback" not in stderr
    stopped = int((tmp_path / "checkpoint").read_text().split("-")[1].split(".")[0])
    assert 1 <= stopped < 30
    dp(["--pt", "train", "input.json", "--restart", "."], tmp_path, check=True)
    steps = np.genfromtxt(lcurve, names=True)["step"].tolist()
    assert steps == list(range(1, 31))
