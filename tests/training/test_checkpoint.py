"""Checkpoint files, rotation and the learning-curve file."""

from __future__ import annotations

import numpy as np
import pytest

from dpmodel.data import DataSystems
from dpmodel.errors import ModelFileError
from dpmodel.training.checkpoint import Checkpoint, CheckpointKeeper, latest_checkpoint, read_checkpoint
from dpmodel.training.lcurve import Lcurve


def _checkpoint(step: int, small_config) -> Checkpoint:
    data = DataSystems(small_config["training"]["training_data"]["systems"], ["Cu", "Au"], 1, seed=3)
    for _ in range(3):
        data.next_batch()
    state = {"model/w": np.arange(6.0).reshape(2, 3), "adam_step": np.asarray(step, dtype=np.int64),
             "opt/count": np.asarray(step, dtype=np.int32)}
    return Checkpoint({"type_map": ["Cu", "Au"]}, small_config, "pt", step, state, {"train": data.state()}, 1.5)


def test_round_trip_is_exact(small_config, tmp_path) -> None:
    ckpt = _checkpoint(7, small_config)
    keeper = CheckpointKeeper(tmp_path, "model.ckpt", 5)
    path = keeper.save(ckpt)
    back = read_checkpoint(path)
    assert (back.step, back.backend, back.min_nbor_dist, back.config) == (7, "pt", 1.5, small_config)
    for key, value in ckpt.state.items():
        assert back.state[key].dtype == value.dtype and np.array_equal(back.state[key], value)
    assert back.data["train"]["rng"] == ckpt.data["train"]["rng"]
    data = DataSystems(small_config["training"]["training_data"]["systems"], ["Cu", "Au"], 1, seed=99)
    data.load_state(back.data["train"])
    original = DataSystems(small_config["training"]["training_data"]["systems"], ["Cu", "Au"], 1, seed=99)
    original.load_state(ckpt.data["train"])
    assert np.array_equal(data.next_batch()[1]["coord"], original.next_batch()[1]["coord"])


def test_keeper_rotates_and_points_at_newest(small_config, tmp_path) -> None:
    keeper = CheckpointKeeper(tmp_path, "model.ckpt", 2)
    for step in (10, 20, 30):
        keeper.save(_checkpoint(step, small_config))
    assert sorted(p.name for p in tmp_path.glob("model.ckpt-*.dp")) == ["model.ckpt-20.dp", "model.ckpt-30.dp"]
    assert latest_checkpoint(tmp_path).name == "model.ckpt-30.dp"
    assert read_checkpoint(tmp_path / "model.ckpt.dp").step == 30
    assert not list(tmp_path.glob(".*tmp"))


def test_model_files_are_not_checkpoints(tmp_path) -> None:
    from dpmodel import io

    io.save(tmp_path / "m.dp", {"model": {}})
    with pytest.raises(ModelFileError, match="not a checkpoint"):
        read_checkpoint(tmp_path / "m.dp")
    with pytest.raises(ModelFileError, match="checkpoint"):
        latest_checkpoint(tmp_path)


def test_lcurve_layout_and_truncation(tmp_path) -> None:
    path = tmp_path / "lcurve.out"
    curve = Lcurve(path, ["rmse", "rmse_e"], has_valid=True)
    for step in (1, 10, 20):
        curve.write(step, {"rmse": step * 1.0, "rmse_e": 0.5}, {"rmse": 2.0, "rmse_e": float("nan")}, 1e-3)
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["#", "step", "rmse_val", "rmse_trn", "rmse_e_val", "rmse_e_trn", "lr"]
    assert lines[1].startswith("# If there is no available reference data")
    assert lines[3] == "     10      2.00e+00    1.00e+01           nan    5.00e-01    1.0e-03"
    Lcurve(path, ["rmse", "rmse_e"], has_valid=True, resume_after=10)
    assert np.genfromtxt(path, names=True)["step"].tolist() == [1, 10]
