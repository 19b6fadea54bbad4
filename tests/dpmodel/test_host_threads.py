"""Host threads for per-frame work: how many, in what order, and the neighbour lists they build."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dpmodel import host_threads
from dpmodel.cell_list import build_neighbor_list_cells
from dpmodel.host_threads import thread_map
from dpmodel.neighbor import build_neighbor_list, extend_coord_with_ghosts
from dpmodel.region import wrap_coord
from tests.systems import random_system


@pytest.fixture
def threads(monkeypatch):
    """Set the host thread count through DeePMD's variable (``OMP_NUM_THREADS`` cleared)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)

    def set_threads(value: str) -> None:
        monkeypatch.setenv("DP_INTRA_OP_PARALLELISM_THREADS", value)
    return set_threads


def test_items_run_concurrently_and_results_keep_their_order(threads):
    threads("2")
    barrier = threading.Barrier(2, timeout=10)  # passes only when two items run at the same time

    def work(item: int) -> tuple[int, int]:
        barrier.wait()
        return item * item, threading.get_ident()

    results = thread_map(work, [3, 1, 2, 5])
    assert [r[0] for r in results] == [9, 1, 4, 25]
    assert threading.get_ident() not in {r[1] for r in results}


def test_one_thread_runs_on_the_calling_thread(threads):
    threads("1")
    idents = thread_map(lambda _: threading.get_ident(), range(4))
    assert idents == [threading.get_ident()] * 4


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.delenv("DP_INTRA_OP_PARALLELISM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert host_threads.host_threads() == 3
    monkeypatch.setenv("DP_INTRA_OP_PARALLELISM_THREADS", "5")  # DeePMD's own variable comes first
    assert host_threads.host_threads() == 5
    monkeypatch.setenv("DP_INTRA_OP_PARALLELISM_THREADS", "0")  # 0: not set
    assert host_threads.host_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS = 'many'"):
        host_threads.host_threads()


def test_an_error_in_an_item_propagates(threads):
    threads("2")

    def work(item: int) -> int:
        if item == 2:
            raise KeyError(f"frame {item}")
        return item

    with pytest.raises(KeyError, match="frame 2"):
        thread_map(work, range(4))


def test_a_forked_process_makes_its_own_pool(threads, monkeypatch):
    """A pool is tied to the process that made it: in a forked child its threads do not exist."""
    threads("2")
    thread_map(abs, [-1, -2])
    parent_pool = host_threads._POOL[2]
    monkeypatch.setattr(host_threads.os, "getpid", lambda: -1)  # as seen from a forked child
    assert thread_map(abs, [-1, -2]) == [1, 2]
    assert host_threads._POOL[2] is not parent_pool


@pytest.mark.parametrize("count", ["1", "2"])
def test_neighbor_lists_of_many_frames_match_all_pairs(threads, count):
    threads(count)
    system = random_system("triclinic", natoms=20, nframes=6, seed=3)
    coord = wrap_coord(system.coord, system.box)
    coord_ext, atype_ext, _ = extend_coord_with_ghosts(coord, system.atype, system.box, 4.0)
    expected = build_neighbor_list(coord_ext, atype_ext, 20, 4.0, [12, 12])
    found = build_neighbor_list_cells(coord_ext, atype_ext, 20, 4.0, [12, 12])
    assert found.shape == (6, 20, 24)
    np.testing.assert_array_equal(found, expected)
    assert not np.array_equal(found[0], found[1])  # different frames, different lists (no frame copied)
