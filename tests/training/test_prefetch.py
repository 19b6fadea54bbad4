"""StagedBatches: batches in order, staged one ahead on a background thread, data state of those handed out."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from dpmodel.training.prefetch import STAGING_NICE, StagedBatches


class Counter:
    """Data whose batch ``n`` is ``{"n": n}`` and whose state is the number of batches drawn."""

    def __init__(self) -> None:
        self.drawn = 0

    def next_batch(self) -> tuple[int, dict]:
        self.drawn += 1
        return 0, {"n": self.drawn - 1}

    def state(self) -> dict:
        return {"drawn": self.drawn}


def staged_on_thread(batch: dict) -> tuple[int, str]:
    return batch["n"], threading.current_thread().name


@pytest.mark.parametrize("background", [True, False])
def test_batches_in_order_with_the_state_of_those_handed_out(background) -> None:
    data = Counter()
    with StagedBatches(data, staged_on_thread, background) as batches:
        assert batches.state() == {"drawn": 0}
        for n in range(5):
            batch, (staged_n, thread) = batches.next(more=n < 4)
            assert batch == {"n": n} and staged_n == n
            assert thread.startswith("dp-stage") == background
            assert batches.state() == {"drawn": n + 1}, "the batch staged ahead is not counted"
    assert data.drawn == 5, "no batch is drawn past the last step"


def test_without_stage_the_batch_is_passed_as_it_is() -> None:
    batches = StagedBatches(Counter(), None, background=True)
    batch, staged = batches.next()
    assert staged is batch and batches.state() == {"drawn": 1}
    batches.close()


def test_a_staging_error_reaches_the_caller_at_its_batch() -> None:
    def fail_on_second(batch: dict) -> int:
        if batch["n"] == 1:
            raise ValueError("frame 1: bad coordinates")
        return batch["n"]

    with StagedBatches(Counter(), fail_on_second, background=True) as batches:
        assert batches.next()[1] == 0
        with pytest.raises(ValueError, match="frame 1: bad coordinates"):
            batches.next()


def test_close_stops_the_background_thread() -> None:
    batches = StagedBatches(Counter(), staged_on_thread, background=True)
    batches.next()
    batches.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("dp-stage")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own niceness on Linux only")
def test_the_staging_thread_runs_at_lower_priority_than_the_caller() -> None:
    def niceness(batch: dict) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    caller = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with StagedBatches(Counter(), niceness, background=True) as batches:
        assert batches.next()[1] == min(19, caller + STAGING_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller, "the caller keeps its priority"
