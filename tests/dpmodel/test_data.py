"""deepmd/npy loading, type remapping, batch-size rules and seeded batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dpmodel.data import (
    DataSystems,
    DeepmdSystem,
    batch_size_for,
    expand_systems,
    system_probabilities,
)
from dpmodel.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
WATER = REPO.parent / "shared" / "data" / "water"
ALLOY = REPO / "examples" / "alloy" / "data"
needs_water = pytest.mark.skipif(
    not WATER.is_dir(), reason=f"shared water data not found at {WATER}"
)


def write_system(
    path: Path,
    atype: list[int],
    nframes: int | list[int] = 4,
    type_map: list[str] | None = None,
    labels: tuple[str, ...] = ("energy", "force"),
    nopbc: bool = False,
    start: int = 0,
) -> Path:
    """Write a system whose frame ``k`` has every coordinate equal to ``k``.

    Energy of frame k is ``10 k``, force ``-k``, virial ``0.5 k``; arrays are
    stored as float32 to check the float64 cast.
    """
    path.mkdir(parents=True)
    (path / "type.raw").write_text("\n".join(map(str, atype)) + "\n")
    if type_map is not None:
        (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    if nopbc:
        (path / "nopbc").touch()
    nat = len(atype)
    sizes = [nframes] if isinstance(nframes, int) else nframes
    first = start
    for iset, size in enumerate(sizes):
        frame = np.arange(first, first + size, dtype=np.float32)[:, None]
        first += size
        set_dir = path / f"set.{iset:03d}"
        set_dir.mkdir()
        np.save(set_dir / "coord.npy", np.repeat(frame, nat * 3, axis=1))
        if not nopbc:
            np.save(set_dir / "box.npy", np.tile(np.eye(3).ravel() * 20.0, (size, 1)))
        values = {
            "energy": 10 * frame[:, 0],
            "force": np.repeat(-frame, nat * 3, axis=1),
            "virial": np.repeat(0.5 * frame, 9, axis=1),
        }
        for name in labels:
            np.save(set_dir / f"{name}.npy", values[name].astype(np.float32))
    return path


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


@pytest.mark.parametrize(
    ("rule", "natoms", "expected"),
    [
        ("auto", 192, 1),  # 192 >= 32
        ("auto", 5, 7),  # 6*5 = 30 < 32 <= 35 = 7*5
        ("auto:100", 30, 4),  # 90 < 100 <= 120
        ("auto:90", 30, 3),  # exactly 90
        ("max:100", 30, 3),  # 90 <= 100 < 120
        ("max:10", 30, 1),  # never below 1
        ("filter:100", 30, 3),
        (5, 1000, 5),
    ],
)
def test_batch_size_rules(rule: int | str, natoms: int, expected: int) -> None:
    assert batch_size_for(rule, natoms) == expected


@pytest.mark.parametrize("rule", ["auto:", "auto:x", "max", "foo:3", 0, True, 2.5])
def test_invalid_batch_size(rule: object) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        batch_size_for(rule, 10)


def test_mixed_batch_size_refused() -> None:
    with pytest.raises(ConfigError, match="mixed-type"):
        batch_size_for("mixed:32", 10)


def test_probabilities() -> None:
    np.testing.assert_allclose(system_probabilities([5, 15]), [0.25, 0.75])
    np.testing.assert_allclose(system_probabilities([5, 15], [1, 3]), [0.25, 0.75])
    uniform = system_probabilities([5, 15], None, "prob_uniform")
    np.testing.assert_allclose(uniform, [0.5, 0.5])
    # block [0, 2) gets 0.8 shared 1:3, block [2, 3) gets 0.2
    blocks = system_probabilities([1, 3, 7], None, "prob_sys_size;0:2:0.8;2:3:0.2")
    np.testing.assert_allclose(blocks, [0.2, 0.6, 0.2])
    with pytest.raises(ConfigError, match="sys_probs"):
        system_probabilities([5, 15], [1.0])
    with pytest.raises(ConfigError, match="auto_prob"):
        system_probabilities([5, 15], None, "prob_foo")


def make_two_systems(root: Path) -> list[Path]:
    """10 frames of 2 atoms (frames 0..9) and 30 frames of 4 atoms (100..129)."""
    return [
        write_system(root / "a", [0, 1], nframes=10),
        write_system(root / "b", [1, 1, 0, 0], nframes=30, start=100),
    ]


def draw(systems: DataSystems, count: int) -> list[tuple[int, tuple[int, ...]]]:
    """(system, frame ids) of the next ``count`` batches."""
    out = []
    for _ in range(count):
        isys, batch = systems.next_batch()
        out.append((isys, tuple(int(c) for c in batch["coord"][:, 0, 0])))
    return out


def test_data_systems_sizes_and_probabilities(tmp_path: Path) -> None:
    paths = make_two_systems(tmp_path)
    systems = DataSystems(paths, ["O", "H"], batch_size=2, seed=0)
    assert systems.batch_sizes == [2, 2] and systems.nbatches == [5, 15]
    np.testing.assert_allclose(systems.probs, [0.25, 0.75])
    auto = DataSystems(tmp_path, ["O", "H"], batch_size="auto:8", seed=0)
    assert auto.batch_sizes == [4, 2]  # ceil(8/2), ceil(8/4)


def test_batch_order_is_fixed_by_seed(tmp_path: Path) -> None:
    paths = make_two_systems(tmp_path)
    first = draw(DataSystems(paths, None, 2, seed=7), 50)
    again = draw(DataSystems(paths, None, 2, seed=7), 50)
    other = draw(DataSystems(paths, None, 2, seed=8), 50)
    assert first == again and first != other
    for isys, frames in first:
        assert len(frames) == 2
        assert all((f < 10) if isys == 0 else (100 <= f < 130) for f in frames)


def test_each_epoch_visits_distinct_frames(tmp_path: Path) -> None:
    path = write_system(tmp_path / "a", [0], nframes=10)
    systems = DataSystems(path, None, batch_size=3, seed=1)
    epoch = [f for _ in range(3) for f in systems.batch_from(0)["coord"][:, 0, 0]]
    assert len(set(epoch)) == 9  # the 10th frame is the skipped tail


def test_system_frequencies_follow_probabilities(tmp_path: Path) -> None:
    systems = DataSystems(make_two_systems(tmp_path), None, 2, seed=3)
    picks = np.array([isys for isys, _ in draw(systems, 4000)])
    # binomial(4000, 0.75): sd = 27.4 draws; allow 4 sd
    assert abs((picks == 1).sum() - 3000) < 110


def test_filter_drops_large_systems(tmp_path: Path) -> None:
    systems = DataSystems(make_two_systems(tmp_path), None, "filter:3", seed=0)
    assert [s.natoms for s in systems.systems] == [2] and systems.batch_sizes == [1]
    with pytest.raises(DataError, match="filtered out every system"):
        DataSystems(tmp_path, None, "filter:1", seed=0)


def test_batch_size_list_must_match_systems(tmp_path: Path) -> None:
    make_two_systems(tmp_path)
    assert DataSystems(tmp_path, None, [3, 4], seed=0).batch_sizes == [3, 4]
    with pytest.raises(ConfigError, match="one per system"):
        DataSystems(tmp_path, None, [3], seed=0)


def test_expand_systems(tmp_path: Path) -> None:
    write_system(tmp_path / "root" / "z" / "deep", [0])
    write_system(tmp_path / "root" / "a", [0])
    found = expand_systems("root", root=tmp_path)
    assert found == [tmp_path / "root" / "a", tmp_path / "root" / "z" / "deep"]
    assert expand_systems([tmp_path / "root" / "a"]) == [tmp_path / "root" / "a"]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no type.raw"):
        expand_systems(tmp_path / "nothing")
    with pytest.raises(DataError, match="does not exist"):
        expand_systems(tmp_path / "absent")


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
