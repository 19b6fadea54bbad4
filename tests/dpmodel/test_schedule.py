"""Exponential learning rate and loss prefactors against hand-derived values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dpmodel.errors import ConfigError
from dpmodel.schedule import DEFAULT_STOP_LR, ExponentialDecay, prefactor

# start 1e-3 -> stop 1e-5 over 1000 steps, decaying every 100: 10 decays of
# 10**(-2/10) each, so the rate is 10**-0.2 = 0.6309573444801932.
RATE = 10.0**-0.2


def test_derived_decay_rate_reaches_stop_lr() -> None:
    lr = ExponentialDecay(1e-3, 1e-5, decay_steps=100, numb_steps=1000)
    assert lr.decay_steps == 100
    assert lr.decay_rate == pytest.approx(RATE, rel=1e-14)
    assert lr.value(0) == 1e-3
    assert lr.value(1000) == pytest.approx(1e-5, rel=1e-12)


def test_stepped_decay_is_piecewise_constant() -> None:
    lr = ExponentialDecay(1e-3, 1e-5, decay_steps=100, numb_steps=1000)
    assert lr.value(99) == 1e-3
    assert lr.value(100) == pytest.approx(1e-3 * RATE, rel=1e-14)
    assert lr.value(250) == pytest.approx(1e-3 * RATE**2, rel=1e-14)


def test_smooth_decay_uses_fractional_exponent() -> None:
    lr = ExponentialDecay(1e-3, 1e-5, decay_steps=100, numb_steps=1000, smooth=True)
    assert lr.value(50) == pytest.approx(1e-3 * 10.0**-0.1, rel=1e-14)


def test_explicit_decay_rate_is_clipped_at_stop_lr() -> None:
    lr = ExponentialDecay(1e-3, 1e-5, decay_steps=10, numb_steps=1000, decay_rate=0.5)
    assert lr.decay_rate == 0.5
    assert lr.value(10) == pytest.approx(5e-4)
    # 1e-3 * 0.5**7 = 7.8e-6 < 1e-5, so the value is clipped
    assert lr.value(70) == 1e-5
    assert lr.value(10**6) == 1e-5


@pytest.mark.parametrize(
    ("numb_steps", "expected"),
    [(300, 4), (1000, 11), (1010, 100), (20000, 100)],
)
def test_too_large_decay_steps_is_replaced(numb_steps: int, expected: int) -> None:
    # T//10 > 100 ? 100 : T//100 + 1   (300 -> 4, 1000 -> 11, 1010 -> 100)
    lr = ExponentialDecay(1e-3, 1e-5, decay_steps=10**6, numb_steps=numb_steps)
    assert lr.decay_steps == expected


def test_decay_steps_kept_when_decay_rate_given() -> None:
    lr = ExponentialDecay(1e-3, 1e-5, 5000, numb_steps=300, decay_rate=0.9)
    assert lr.decay_steps == 5000


def test_stop_lr_floor_in_rate() -> None:
    # stop_lr below 1e-10 is floored at 1e-10 when deriving the rate
    lr = ExponentialDecay(1e-2, 1e-14, decay_steps=1, numb_steps=8)
    assert lr.decay_rate == pytest.approx(10.0**-1, rel=1e-12)


def test_zero_decay_steps_total_gives_unit_rate() -> None:
    lr = ExponentialDecay(1e-3, 1e-5, decay_steps=100, numb_steps=0)
    assert lr.decay_rate == 1.0
    assert lr.value(0) == 1e-3


def test_warmup_is_linear_then_decays() -> None:
    lr = ExponentialDecay(
        1e-3, 1e-5, 100, numb_steps=1100, warmup_steps=100, warmup_start_factor=0.1
    )
    assert lr.value(0) == pytest.approx(1e-4)
    assert lr.value(50) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert lr.value(100) == 1e-3
    assert lr.value(200) == pytest.approx(1e-3 * RATE)
    assert lr.value(1100) == pytest.approx(1e-5, rel=1e-12)


def test_array_steps_match_scalar_steps() -> None:
    lr = ExponentialDecay(1e-3, 1e-5, 100, numb_steps=1100, warmup_steps=100)
    steps = np.arange(0, 1200, 37)
    values = lr.value(steps)
    assert values.shape == steps.shape
    np.testing.assert_allclose(values, [lr.value(int(s)) for s in steps], rtol=1e-15)


def test_array_api_strict_steps() -> None:
    xp = pytest.importorskip("array_api_strict")
    lr = ExponentialDecay(1e-3, 1e-5, 100, numb_steps=1000)
    values = lr.value(xp.asarray([0, 100, 1000]))
    expected = [1e-3, 1e-3 * RATE, 1e-5]
    np.testing.assert_allclose(np.asarray(values), expected, rtol=1e-12)


def test_from_config_resolves_ratios_and_defaults() -> None:
    section = {"start_lr": 1e-3, "stop_lr_ratio": 1e-2, "warmup_ratio": 0.1}
    lr = ExponentialDecay.from_config(section, numb_steps=1100)
    assert lr.stop_lr == pytest.approx(1e-5)
    assert lr.warmup_steps == 110
    # default decay_steps 5000 >= T = 1100 - 110 = 990, so it becomes 990//100 + 1
    assert lr.decay_steps == 10
    default = ExponentialDecay.from_config({"start_lr": 1e-3}, numb_steps=10)
    assert default.stop_lr == DEFAULT_STOP_LR == 5e-8


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"start_lr": 0.0}, "learning_rate/start_lr"),
        ({"stop_lr": -1.0}, "learning_rate/stop_lr"),
        ({"decay_steps": 0}, "learning_rate/decay_steps"),
        ({"warmup_steps": 2000}, "learning_rate/warmup_steps"),
        ({"decay_rate": math.nan}, "learning_rate/decay_rate"),
    ],
)
def test_invalid_arguments_name_the_key(kwargs: dict, key: str) -> None:
    args = {"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 10, "numb_steps": 1000}
    with pytest.raises(ConfigError, match=key):
        ExponentialDecay(**{**args, **kwargs})


def test_from_config_rejects_other_types() -> None:
    with pytest.raises(ConfigError, match="learning_rate/type"):
        ExponentialDecay.from_config({"type": "cosine", "start_lr": 1e-3}, 10)


def test_prefactor_interpolates_with_lr() -> None:
    assert prefactor(1000.0, 1.0, lr=1e-3, start_lr=1e-3) == 1000.0
    assert prefactor(1000.0, 1.0, lr=0.0, start_lr=1e-3) == 1.0
    assert prefactor(1000.0, 1.0, lr=5e-4, start_lr=1e-3) == pytest.approx(500.5)
    assert prefactor(0.02, 1.0, lr=1e-4, start_lr=1e-3) == pytest.approx(0.902)
