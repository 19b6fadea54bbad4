"""The training cache of neighbour data: same results, hits for frames seen, bounded, read-only."""

from __future__ import annotations

import numpy as np
import pytest

from dpmodel import neighbor_cache
from dpmodel.neighbor import neighbor_data
from tests.systems import random_system


@pytest.fixture
def cache():
    active = neighbor_cache.activate(max_mb=64)
    yield active
    neighbor_cache.deactivate(active)


def _args(seed: int, kind: str = "triclinic"):
    system = random_system(kind, natoms=16, seed=seed)
    return system.coord, system.atype, system.box, 4.0, [20, 20]


@pytest.mark.parametrize("kind", ["triclinic", "cluster"])  # with and without a cell
def test_cached_results_equal_fresh_ones_and_repeat_frames_hit(cache, kind):
    args = _args(3, kind)
    first = neighbor_data(*args)
    again = neighbor_data(*(np.array(a) if isinstance(a, np.ndarray) else a for a in args))  # equal values, new arrays
    neighbor_cache.deactivate(cache)
    fresh = neighbor_data(*args)
    assert (cache.misses, cache.hits) == (1, 1)
    for cached, repeated, computed in zip(first, again, fresh):
        assert repeated is cached
        np.testing.assert_array_equal(cached, computed)
        assert not cached.flags.writeable


def test_other_frames_and_settings_miss(cache):
    coord, atype, box, rcut, sel = _args(4)
    neighbor_data(coord, atype, box, rcut, sel)
    moved = coord.copy()
    moved[0, 0, 0] += 1e-12
    neighbor_data(moved, atype, box, rcut, sel)
    neighbor_data(coord, atype, box, 3.5, sel)
    neighbor_data(coord, atype, box, rcut, [10, 10])
    neighbor_data(coord, atype[:, ::-1].copy(), box, rcut, sel)
    assert (cache.misses, cache.hits) == (5, 0)


def test_least_recently_used_entries_go_past_the_limit():
    small = neighbor_cache.NeighborCache(max_bytes=0)
    sizes = []
    for seed in range(4):
        coord, atype, box, rcut, sel = _args(seed)
        key = small.key(coord, atype, box, rcut, sel, "auto")
        sizes.append(sum(a.nbytes for a in neighbor_data(coord, atype, box, rcut, sel)))
        small.max_bytes = sum(sizes[-2:])  # room for the two latest frames
        small.get_or_build(key, lambda: neighbor_data(coord, atype, box, rcut, sel))
    assert small.nbytes == sum(sizes[-2:]) and len(small._store) == 2
    coord, atype, box, rcut, sel = _args(0)
    small.get_or_build(small.key(coord, atype, box, rcut, sel, "auto"), lambda: neighbor_data(coord, atype, box, rcut, sel))
    assert small.misses == 5 and small.hits == 0  # the first frame was evicted


def test_size_from_the_environment(monkeypatch):
    monkeypatch.setenv("DP_NEIGHBOR_CACHE_MB", "0")
    assert neighbor_cache.activate() is None and neighbor_cache.active() is None
    monkeypatch.setenv("DP_NEIGHBOR_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="DP_NEIGHBOR_CACHE_MB"):
        neighbor_cache.activate()
