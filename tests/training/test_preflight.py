"""Neighbour statistics, pre-flight refusals and the initial model."""

from __future__ import annotations

import copy
import logging
import shutil

import numpy as np
import pytest

from dpmodel.config.backend import resolve_for_backend
from dpmodel.data import DataSystems, DeepmdSystem
from dpmodel.errors import DataError, UnsupportedOptionError
from dpmodel.neighbor import neighbor_data
from dpmodel.training.init import initial_model, resolve_seeds, resolve_sel
from dpmodel.training import neighbor_stat
from dpmodel.training.neighbor_stat import auto_sel, system_neighbor_stat
from dpmodel.training.preflight import preflight


def _systems(config):
    train_cfg = config["training"]
    make = lambda key, seed: DataSystems(train_cfg[key]["systems"], config["model"]["type_map"], 1, seed=seed)
    return make("training_data", 1), make("validation_data", 2)


@pytest.mark.parametrize("pair_search_above", [0, 10**12], ids=["pair-search", "distance-array"])
def test_neighbor_counts_match_the_neighbor_list(small_config, monkeypatch, pair_search_above) -> None:
    monkeypatch.setattr(neighbor_stat, "_PAIR_SEARCH_ABOVE", pair_search_above)
    system = DeepmdSystem(small_config["training"]["training_data"]["systems"][0], ["Cu", "Au"])
    stat = system_neighbor_stat(system, 5.0, 2)
    batch = system.frames(np.arange(0, system.nframes, 25))
    _, atype_ext, _, nlist = neighbor_data(batch["coord"], batch["atype"], batch["box"], 5.0, [200, 200])
    counts = [(nlist[:, :, 200 * t:200 * (t + 1)] >= 0).sum(-1).max() for t in range(2)]
    assert all(stat.max_count[t] >= counts[t] for t in range(2))
    assert stat.max_count.tolist() == [37, 14]
    assert auto_sel(stat.max_count) == [40, 16] and auto_sel([10, 1], 1.5) == [16, 4]
    assert stat.min_dist == pytest.approx(2.0877, abs=1e-4)


def test_sel_overflow_names_the_sel_to_use(small_config) -> None:
    train, valid = _systems(small_config)
    with pytest.raises(DataError, match=r"sel = \[30, 16\] is too small.*'Cu'.*at least \[37, 16\]"):
        preflight(train, valid, 5.0, [30, 16], ["Cu", "Au"])


def test_overlapping_atoms_and_thin_cells(small_config, tmp_path, caplog) -> None:
    source = small_config["training"]["training_data"]["systems"][0]
    shutil.copytree(source, tmp_path / "sys")
    coord = np.load(tmp_path / "sys/set.000/coord.npy")
    coord[3, 3:6] = coord[3, 0:3] + 0.05
    np.save(tmp_path / "sys/set.000/coord.npy", coord)
    data = DataSystems([str(tmp_path / "sys")], ["Cu", "Au"], 1)
    with pytest.raises(DataError, match=r"frame 3: atoms 0 and 1 are 0.08\d+ Å apart"):
        preflight(data, None, 5.0, "auto", ["Cu", "Au"])
    with caplog.at_level(logging.WARNING):
        preflight(DataSystems([source], ["Cu", "Au"], 1), None, 8.0, "auto", ["Cu", "Au"])
    assert "thinner than rcut" in caplog.text


def test_initial_model_is_deterministic_with_least_squares_bias(small_config) -> None:
    train, valid = _systems(small_config)
    stat = preflight(train, valid, 5.0, "auto", ["Cu", "Au"])
    config = copy.deepcopy(small_config)
    config["model"]["descriptor"]["sel"] = "auto"
    config["model"]["descriptor"]["seed"] = config["model"]["fitting_net"]["seed"] = None
    config = resolve_seeds(resolve_sel(config, stat.max_count))
    assert config["model"]["descriptor"]["sel"] == [40, 16]
    assert config["model"]["descriptor"]["seed"] == config["training"]["seed"]
    assert config["model"]["fitting_net"]["seed"] == config["training"]["seed"] + 1
    first, second = initial_model(config, train), initial_model(config, train)
    from dpmodel.serialization import trees_equal

    assert trees_equal(first, second) == []
    assert np.abs(first["@variables"]["out_bias"]).max() > 0
    davg = first["descriptor"]["@variables"]["davg"]
    assert davg.shape == (2, 56, 1) and np.all(davg[:, :1] == davg)


def test_type_one_side_default_depends_on_backend(small_config) -> None:
    config = copy.deepcopy(small_config)
    config["model"]["descriptor"]["type_one_side"] = None
    assert resolve_for_backend(config, "tf")["model"]["descriptor"]["type_one_side"] is False
    assert resolve_for_backend(config, "jax")["model"]["descriptor"]["type_one_side"] is True
    config["model"]["descriptor"]["type_one_side"] = False
    with pytest.raises(UnsupportedOptionError, match="type_one_side.*--tf"):
        resolve_for_backend(config, "pt")


def test_prepare_tells_the_trainer_the_most_neighbors(small_config, tmp_path, monkeypatch) -> None:
    """The neighbour statistics reach a backend that can leave out slots no frame fills."""
    import json

    from stub_backend import StubTrainer

    from dpmodel.training import TrainOptions, setup

    seen = []

    class Recorder(StubTrainer):
        def set_max_neighbors(self, max_count):
            seen.append(max_count)

    monkeypatch.setattr(setup, "trainer_class", lambda info: Recorder)
    path = tmp_path / "input.json"
    path.write_text(json.dumps(small_config))
    setup.prepare(path, "pt", TrainOptions(workdir=str(tmp_path), progress=False))
    assert seen == [[37, 14]]  # the most Cu and Au neighbours within 5 Å (the statistics test above)
    setup.prepare(path, "pt", TrainOptions(workdir=str(tmp_path), progress=False, skip_neighbor_stat=True))
    assert seen == [[37, 14]], "without statistics nothing is known"
