"""Schema of the ``learning_rate`` section (type ``exp``; SPEC 8.2).

The numbers are turned into a schedule by ``dpmodel.schedule.ExponentialDecay``.
"""

from __future__ import annotations

from typing import Any

from dargs import Argument, Variant

from dpmodel.config.common import opt
from dpmodel.errors import ConfigError

__all__ = ["check_learning_rate", "learning_rate_args"]


def learning_rate_exp() -> Argument:
    """The ``exp`` schedule choice."""
    fields = [
        opt("decay_steps", int, 5000, "Steps between two decays."),
        opt(
            "decay_rate",
            [float, None],
            None,
            "Decay factor per decay_steps; derived from stop_lr when null.",
        ),
        opt("smooth", bool, False, "Decay continuously instead of in steps."),
    ]
    return Argument("exp", dict, fields, doc="Exponential decay.")


def learning_rate_args() -> Argument:
    """Return the ``learning_rate`` section schema."""
    fields = [
        Argument("start_lr", float, doc="Learning rate at the end of warmup."),
        opt("stop_lr", [float, None], None, "Learning rate at numb_steps (5e-8)."),
        opt("stop_lr_ratio", [float, None], None, "stop_lr as a ratio of start_lr."),
        opt("warmup_steps", int, 0, "Steps of linear warmup."),
        opt("warmup_ratio", [float, None], None, "Warmup as a ratio of numb_steps."),
        opt("warmup_start_factor", float, 0.0, "Warmup starts at this * start_lr."),
        opt(
            "scale_by_worker",
            str,
            "linear",
            "Scaling of the rate with parallel workers: linear, sqrt or none.",
            extra_check=lambda value: value in ("linear", "sqrt", "none"),
            extra_check_errmsg="expected 'linear', 'sqrt' or 'none'",
        ),
    ]
    variant = Variant("type", [learning_rate_exp()], True, "exp", "Schedule type.")
    return Argument(
        "learning_rate", dict, fields, [variant], doc="The learning-rate schedule."
    )


def check_learning_rate(section: dict[str, Any]) -> None:
    """Cross-key checks of a normalized ``learning_rate`` section.

    Parameters
    ----------
    section : dict
        The normalized ``learning_rate`` section.

    Raises
    ------
    ConfigError
        If mutually exclusive keys are both set.
    """
    if section.get("stop_lr") is not None and section.get("stop_lr_ratio") is not None:
        raise ConfigError(
            "learning_rate/stop_lr and learning_rate/stop_lr_ratio are mutually "
            "exclusive; set only one"
        )
    if section.get("warmup_steps") and section.get("warmup_ratio") is not None:
        raise ConfigError(
            "learning_rate/warmup_steps and learning_rate/warmup_ratio are mutually "
            "exclusive; set only one"
        )
