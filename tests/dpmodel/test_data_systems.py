"""Batch-size rules, system probabilities, seeded batch order, system discovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from npy_systems import write_system

from dpmodel.data import (
    DataSystems,
    batch_size_for,
    expand_systems,
    system_probabilities,
)
from dpmodel.errors import ConfigError, DataError


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
