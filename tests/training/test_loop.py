"""The Trainer with a NumPy stub backend: schedule, lcurve rows, checkpoints, restart, Ctrl-C."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from stub_backend import StagingStubTrainer, StubTrainer, stub_prepared

from dpmodel.data import DataSystems
from dpmodel.training import Trainer, TrainingInterrupted, TrainOptions
from dpmodel.training.checkpoint import read_checkpoint


def _run(config, workdir, on_step=None, restart=None, staging=False):
    train_cfg = config["training"]
    train = DataSystems(train_cfg["training_data"]["systems"], config["model"]["type_map"], 1, seed=7)
    valid = DataSystems(train_cfg["validation_data"]["systems"], config["model"]["type_map"], 1, seed=[7, 1])
    stub = (StagingStubTrainer if staging else StubTrainer)({}, config, on_step)
    prepared = stub_prepared(config, train, valid, stub, {})
    if restart is not None:
        ckpt = read_checkpoint(restart)
        stub.load_state(ckpt.state)
        train.load_state(ckpt.data["train"])
        valid.load_state(ckpt.data["valid"])
        prepared.start_step, prepared.restarted = ckpt.step, True
    trainer = Trainer(prepared, TrainOptions(workdir=workdir, progress=False))
    return trainer, trainer.run


def test_rows_checkpoints_and_out_json(small_config, tmp_path) -> None:
    trainer, run = _run(small_config, tmp_path)
    assert run() == 12
    assert trainer.p.trainer.closed == 1, "the backend is closed once training ends"
    assert [row["step"] for row in trainer.history] == [1, 2, 4, 6, 8, 10, 12]
    table = np.genfromtxt(tmp_path / "lcurve.out", names=True)
    assert table.dtype.names == ("step", "rmse_val", "rmse_trn", "rmse_e_val", "rmse_e_trn", "rmse_f_val",
                                 "rmse_f_trn", "rmse_v_val", "rmse_v_trn", "lr")
    assert table["step"].tolist() == [1, 2, 4, 6, 8, 10, 12]
    np.testing.assert_allclose(table["lr"], [row["lr"] for row in trainer.history], rtol=0.05)
    names = sorted(p.name for p in tmp_path.glob("model.ckpt-*.dp"))
    assert names == ["model.ckpt-12.dp", "model.ckpt-4.dp", "model.ckpt-8.dp"]
    assert (tmp_path / "checkpoint").read_text().strip() == "model.ckpt-12.dp"
    assert read_checkpoint(tmp_path / "model.ckpt.dp").step == 12
    assert (tmp_path / "out.json").is_file()


@pytest.mark.parametrize("staging", [False, True])
def test_restart_continues_identical_trajectory(small_config, tmp_path, staging) -> None:
    full, run = _run(small_config, tmp_path / "full")
    run()
    resumed, run = _run(small_config, tmp_path / "resumed", restart=tmp_path / "full" / "model.ckpt-4.dp",
                        staging=staging)
    run()
    assert resumed.history == [row for row in full.history if row["step"] > 4]
    final = [read_checkpoint(tmp_path / d / "model.ckpt-12.dp").state for d in ("full", "resumed")]
    for key in final[0]:
        assert np.array_equal(final[0][key], final[1][key])


@pytest.mark.parametrize("staging", [False, True])
def test_ctrl_c_saves_and_restart_matches(small_config, tmp_path, staging, monkeypatch) -> None:
    """With staging, the batch staged ahead of the interrupted step is not counted as seen."""
    monkeypatch.setenv("DP_INTRA_OP_PARALLELISM_THREADS", "2")
    full, run = _run(small_config, tmp_path / "full")
    run()

    def interrupt(count: int) -> None:
        if count == 5:
            os.kill(os.getpid(), signal.SIGINT)

    stopped, run = _run(small_config, tmp_path / "cut", on_step=interrupt, staging=staging)
    with pytest.raises(TrainingInterrupted) as info:
        run()
    assert info.value.step == 5 and info.value.checkpoint.name == "model.ckpt-5.dp"
    assert stopped.p.trainer.closed == 1, "an interrupted run closes the backend too"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed, run = _run(small_config, tmp_path / "cut", restart=tmp_path / "cut")
    run()
    rows = np.genfromtxt(tmp_path / "cut" / "lcurve.out", names=True)
    expected = np.genfromtxt(tmp_path / "full" / "lcurve.out", names=True)
    assert rows.tolist() == expected.tolist()
    assert stopped.history + resumed.history == full.history


def test_staged_batches_train_the_same_trajectory_with_checkpoints(small_config, tmp_path, monkeypatch) -> None:
    """A backend with ``stage`` gets every batch staged on the background thread, one step ahead, and
    trains bitwise the trajectory of plain batches; its checkpoints hold the data state of the batches
    trained, not of the one staged ahead."""
    monkeypatch.setenv("DP_INTRA_OP_PARALLELISM_THREADS", "2")  # host work on more than one thread
    plain, run = _run(small_config, tmp_path / "plain")
    run()
    staged, run = _run(small_config, tmp_path / "staged", staging=True)
    run()
    assert staged.history == plain.history
    assert len(staged.p.trainer.stage_threads) == 12, "each of the 12 batches staged once"
    assert all(name.startswith("dp-stage") for name in staged.p.trainer.stage_threads)
    for step in (4, 8, 12):
        saved = [read_checkpoint(tmp_path / d / f"model.ckpt-{step}.dp") for d in ("plain", "staged")]
        assert saved[0].data["train"]["cursor"] == saved[1].data["train"]["cursor"]
        assert saved[0].data["train"]["rng"] == saved[1].data["train"]["rng"]
        for key in saved[0].state:
            assert np.array_equal(saved[0].state[key], saved[1].state[key])


def test_lcurve_without_validation_or_virial(small_config, tmp_path) -> None:
    small_config["training"]["validation_data"] = None
    small_config["loss"]["start_pref_v"] = small_config["loss"]["limit_pref_v"] = 0.0
    train = DataSystems(small_config["training"]["training_data"]["systems"], ["Cu", "Au"], 1, seed=1)
    trainer = Trainer(stub_prepared(small_config, train, None, StubTrainer({}, small_config), {}),
                      TrainOptions(workdir=tmp_path, progress=False))
    trainer.run()
    table = np.genfromtxt(tmp_path / "lcurve.out", names=True)
    assert table.dtype.names == ("step", "rmse_trn", "rmse_e_trn", "rmse_f_trn", "lr")
