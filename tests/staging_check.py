"""A check shared by the backends' training tests: a batch staged on another thread trains like the batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


def assert_staged_step_is_bitwise(plain: Any, ahead: Any, batch: dict, prefs: dict, staged_type: type) -> None:
    """Two trainers of one model: ``ahead`` steps on ``stage(batch)`` made on a background thread, as the
    trainer does one step ahead, ``plain`` on ``batch``; metrics, validation and the next parameters
    must be equal bit for bit."""
    with ThreadPoolExecutor(1) as pool:
        staged = pool.submit(ahead.stage, batch).result()
    assert isinstance(staged, staged_type)
    first, second = plain.step(batch, 1e-3, prefs), ahead.step(staged, 1e-3, prefs)
    for key in first:
        assert float(first[key]) == float(second[key]), key
    assert float(plain.evaluate(batch, prefs)["rmse"]) == float(ahead.evaluate(staged, prefs)["rmse"])
    after = [plain.state(), ahead.state()]
    for key in after[0]:
        np.testing.assert_array_equal(after[0][key], after[1][key], err_msg=key)
