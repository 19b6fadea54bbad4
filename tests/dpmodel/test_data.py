"""deepmd/npy loading: values, shapes, sets, type remapping, error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from npy_systems import write_system

from dpmodel.data import DataSystems, DeepmdSystem
from dpmodel.errors import DataError

REPO = Path(__file__).resolve().parents[2]
WATER = REPO.parent / "shared" / "data" / "water"
ALLOY = REPO / "examples" / "alloy" / "data"
needs_water = pytest.mark.skipif(
    not WATER.is_dir(), reason=f"shared water data not found at {WATER}"
)


def test_loads_known_values_as_float64(tmp_path: Path) -> None:
    system = DeepmdSystem(write_system(tmp_path / "s", [0, 1, 1], nframes=[3, 2]))
    assert (system.nframes, system.natoms, system.ntypes) == (5, 3, 2)
    batch = system.frames([4, 1])
    assert batch["coord"].shape == (2, 3, 3) and batch["coord"].dtype == np.float64
    np.testing.assert_array_equal(batch["coord"][:, 0, 0], [4.0, 1.0])
    np.testing.assert_array_equal(batch["energy"], [[40.0], [10.0]])
    assert batch["force"].shape == (2, 3, 3)
    np.testing.assert_array_equal(batch["force"][:, 2, 1], [-4.0, -1.0])
    assert batch["box"].shape == (2, 9) and batch["box"][0, 0] == 20.0
    np.testing.assert_array_equal(batch["atype"], [[0, 1, 1], [0, 1, 1]])
    np.testing.assert_array_equal(batch["natoms_per_type"], [[1, 2], [1, 2]])
    assert batch["find_energy"] == 1.0 and batch["find_force"] == 1.0
    assert batch["find_virial"] == 0.0
    np.testing.assert_array_equal(batch["virial"], np.zeros((2, 9)))


def test_sets_are_read_in_sorted_order(tmp_path: Path) -> None:
    path = write_system(tmp_path / "s", [0], nframes=[2, 3], labels=("virial",))
    (path / "set.000").rename(path / "set.tmp")
    (path / "set.001").rename(path / "set.000")
    (path / "set.tmp").rename(path / "set.001")  # now set.000 holds frames 2..4
    system = DeepmdSystem(path)
    np.testing.assert_array_equal(system.coord[:, 0, 0], [2, 3, 4, 0, 1])
    np.testing.assert_array_equal(system.frames([0])["virial"], np.full((1, 9), 1.0))


def test_remaps_types_by_element_name(tmp_path: Path) -> None:
    path = write_system(tmp_path / "s", [0, 1, 1], type_map=["H", "O"])
    system = DeepmdSystem(path, type_map=["O", "H"])
    np.testing.assert_array_equal(system.atype, [1, 0, 0])
    assert system.type_map == ["O", "H"]
    np.testing.assert_array_equal(system.frames([0])["natoms_per_type"], [[2, 1]])
    wider = DeepmdSystem(path, type_map=["C", "O", "H"])
    np.testing.assert_array_equal(wider.atype, [2, 1, 1])
    assert wider.frames([0, 1])["natoms_per_type"].shape == (2, 3)


def test_type_map_raw_used_without_model_type_map(tmp_path: Path) -> None:
    system = DeepmdSystem(write_system(tmp_path / "s", [1, 0], type_map=["H", "O"]))
    assert system.type_map == ["H", "O"]
    np.testing.assert_array_equal(system.atype, [1, 0])


def test_element_missing_from_model_type_map(tmp_path: Path) -> None:
    path = write_system(tmp_path / "s", [0, 2], type_map=["O", "H", "C"])
    with pytest.raises(DataError, match=r"'C'.*type_map\.raw.*\['O', 'H'\]"):
        DeepmdSystem(path, type_map=["O", "H"])


def test_type_index_beyond_model_type_map(tmp_path: Path) -> None:
    path = write_system(tmp_path / "s", [0, 3])
    with pytest.raises(DataError, match="type.raw uses type 3"):
        DeepmdSystem(path, type_map=["O", "H"])


def test_wrong_shape_names_file_and_expected_shape(tmp_path: Path) -> None:
    path = write_system(tmp_path / "s", [0] * 192, nframes=10)
    np.save(path / "set.000" / "force.npy", np.zeros((10, 575)))
    message = r"set\.000/force\.npy has shape \(10, 575\), expected \(10, 576\)"
    with pytest.raises(DataError, match=message + r" = \(nframes, natoms\*3\)"):
        DeepmdSystem(path)


def test_frame_count_mismatch(tmp_path: Path) -> None:
    path = write_system(tmp_path / "s", [0, 0], nframes=4)
    np.save(path / "set.000" / "energy.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"energy\.npy has shape \(3,\), expected"):
        DeepmdSystem(path)


@pytest.mark.parametrize("missing", ["coord.npy", "box.npy"])
def test_missing_required_file(tmp_path: Path, missing: str) -> None:
    path = write_system(tmp_path / "s", [0, 0])
    (path / "set.000" / missing).unlink()
    with pytest.raises(DataError, match=f"set.000/{missing} is missing"):
        DeepmdSystem(path)


def test_nopbc_needs_no_box(tmp_path: Path) -> None:
    system = DeepmdSystem(write_system(tmp_path / "s", [0, 0], nopbc=True))
    assert not system.pbc and system.frames([0])["box"] is None


def test_missing_type_raw_and_sets(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="type.raw is missing"):
        DeepmdSystem(tmp_path / "empty")
    (tmp_path / "empty" / "type.raw").write_text("0\n")
    with pytest.raises(DataError, match="no set.* directory"):
        DeepmdSystem(tmp_path / "empty")


def test_label_in_some_sets_only(tmp_path: Path) -> None:
    path = write_system(tmp_path / "s", [0], nframes=[2, 2])
    (path / "set.001" / "energy.npy").unlink()
    with pytest.raises(DataError, match="set.001/energy.npy is missing"):
        DeepmdSystem(path)


@needs_water
def test_water_systems() -> None:
    systems = DataSystems(WATER, ["O", "H"], "auto", seed=1)
    assert [p.path.name for p in systems.systems] == [f"data_{i}" for i in range(4)]
    assert [s.nframes for s in systems.systems] == [80, 160, 80, 80]
    assert systems.batch_sizes == [1, 1, 1, 1]  # 192 atoms >= 32
    np.testing.assert_allclose(systems.probs, [0.2, 0.4, 0.2, 0.2])
    _, batch = systems.next_batch()
    np.testing.assert_array_equal(batch["natoms_per_type"], [[64, 128]])
    assert batch["coord"].dtype == np.float64 and batch["find_virial"] == 0.0
    swapped = DeepmdSystem(WATER / "data_0", ["H", "O"])
    np.testing.assert_array_equal(np.bincount(swapped.atype), [128, 64])


def test_alloy_example_data() -> None:
    train = DeepmdSystem(ALLOY / "train", ["Cu", "Au"])
    valid = DeepmdSystem(ALLOY / "valid", ["Cu", "Au"])
    assert (train.nframes, valid.nframes, train.natoms) == (200, 40, 32)
    assert np.bincount(train.atype).tolist() == [24, 8]
    batch = train.frames(range(200))
    assert batch["find_energy"] == batch["find_force"] == batch["find_virial"] == 1.0
    # virial = -stress * volume is symmetric
    virial = batch["virial"].reshape(-1, 3, 3)
    np.testing.assert_allclose(virial, virial.transpose(0, 2, 1), atol=1e-12)
    # the EMT forces of a periodic cell sum to zero
    np.testing.assert_allclose(batch["force"].sum(axis=1), 0.0, atol=1e-9)
