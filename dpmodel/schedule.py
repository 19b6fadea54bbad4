"""Exponential learning-rate schedule and loss prefactors (pure math).

The schedule follows DeePMD-kit v3 (``learning_rate.type = "exp"``, SPEC 8.2): an
optional linear warmup, then a stepped (or smooth) exponential decay whose rate is
derived so that ``stop_lr`` is reached at ``numb_steps``, clipped below at
``stop_lr``.  ``prefactor`` interpolates loss weights with the learning rate
(SPEC 8.3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import array_api_compat
import numpy as np

from dpmodel.errors import ConfigError

__all__ = ["DEFAULT_STOP_LR", "ExponentialDecay", "prefactor"]

#: ``stop_lr`` used when neither ``stop_lr`` nor ``stop_lr_ratio`` is given.
DEFAULT_STOP_LR = 5e-8


def _default_decay_steps(decay_total: int) -> int:
    """Return DeePMD's replacement for a ``decay_steps`` that is too large."""
    return 100 if decay_total // 10 > 100 else decay_total // 100 + 1


class ExponentialDecay:
    r"""Exponentially decaying learning rate with optional linear warmup.

    With :math:`T = \mathrm{numb\_steps} - \mathrm{warmup\_steps}`, decay period
    :math:`s` and rate :math:`r`, the learning rate at global step :math:`\tau` is

    .. math::
        \gamma(\tau) = \begin{cases}
          \gamma_0\,[f + (1-f)\,\tau/\tau_w] & \tau < \tau_w \\
          \max\bigl(\gamma_0\, r^{\lfloor(\tau-\tau_w)/s\rfloor},\ \gamma_{stop}\bigr)
            & \tau \ge \tau_w
        \end{cases}

    where :math:`r = \exp\bigl(\ln(\max(\gamma_{stop}, 10^{-10})/\gamma_0)\,s/T\bigr)`
    unless ``decay_rate`` is given (``smooth`` drops the floor).  If ``decay_rate``
    is not given and ``decay_steps >= T``, ``decay_steps`` becomes
    ``100 if T // 10 > 100 else T // 100 + 1``.

    Parameters
    ----------
    start_lr : float
        Learning rate after warmup, :math:`\gamma_0`.
    stop_lr : float
        Learning rate reached at ``numb_steps``; also the lower clip.
    decay_steps : int
        Decay period :math:`s` in steps.
    numb_steps : int
        Total number of training steps.
    decay_rate : float, optional
        Explicit decay rate :math:`r`; derived from ``stop_lr`` when None.
    warmup_steps : int
        Number of linear warmup steps :math:`\tau_w`.
    warmup_start_factor : float
        Warmup starts at ``warmup_start_factor * start_lr``.
    smooth : bool
        Use the continuous exponent :math:`(\tau-\tau_w)/s` instead of its floor.
    """

    def __init__(
        self,
        start_lr: float,
        stop_lr: float,
        decay_steps: int,
        numb_steps: int,
        decay_rate: float | None = None,
        warmup_steps: int = 0,
        warmup_start_factor: float = 0.0,
        smooth: bool = False,
    ) -> None:
        _check_positive("learning_rate/start_lr", start_lr)
        _check_positive("learning_rate/stop_lr", stop_lr)
        _check_positive("learning_rate/decay_steps", decay_steps)
        if not 0 <= warmup_steps <= numb_steps:
            raise ConfigError(
                f"learning_rate/warmup_steps = {warmup_steps} must lie in "
                f"[0, training/numb_steps = {numb_steps}]"
            )
        if decay_rate is not None:
            _check_positive("learning_rate/decay_rate", decay_rate)
        self.start_lr = float(start_lr)
        self.stop_lr = float(stop_lr)
        self.numb_steps = int(numb_steps)
        self.warmup_steps = int(warmup_steps)
        self.warmup_start_factor = float(warmup_start_factor)
        self.smooth = bool(smooth)
        decay_total = self.numb_steps - self.warmup_steps
        self.decay_steps = int(decay_steps)
        if decay_rate is None and self.decay_steps >= decay_total:
            self.decay_steps = _default_decay_steps(decay_total)
        if decay_rate is not None:
            self.decay_rate = float(decay_rate)
        elif decay_total == 0:
            self.decay_rate = 1.0
        else:
            ratio = max(self.stop_lr, 1e-10) / self.start_lr
            self.decay_rate = math.exp(
                math.log(ratio) / (decay_total / self.decay_steps)
            )

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any], numb_steps: int
    ) -> ExponentialDecay:
        """Build the schedule from a normalized ``learning_rate`` section.

        Parameters
        ----------
        section : Mapping
            The ``learning_rate`` dict of a normalized ``input.json``.
        numb_steps : int
            ``training/numb_steps``.

        Returns
        -------
        ExponentialDecay
            The schedule; ``stop_lr_ratio`` and ``warmup_ratio`` are resolved here.
        """
        if section.get("type", "exp") != "exp":
            raise ConfigError(
                f"learning_rate/type = {section['type']!r} is not supported; "
                "expected 'exp'"
            )
        start_lr = section["start_lr"]
        stop_lr = section.get("stop_lr")
        if stop_lr is None and section.get("stop_lr_ratio") is not None:
            stop_lr = start_lr * section["stop_lr_ratio"]
        warmup_steps = section.get("warmup_steps") or 0
        if section.get("warmup_ratio") is not None:
            warmup_steps = int(section["warmup_ratio"] * numb_steps)
        return cls(
            start_lr=start_lr,
            stop_lr=DEFAULT_STOP_LR if stop_lr is None else stop_lr,
            decay_steps=section.get("decay_steps", 5000),
            numb_steps=numb_steps,
            decay_rate=section.get("decay_rate"),
            warmup_steps=warmup_steps,
            warmup_start_factor=section.get("warmup_start_factor", 0.0),
            smooth=section.get("smooth", False),
        )

    def value(self, step: Any) -> Any:
        """Return the learning rate at a global step.

        Parameters
        ----------
        step : int or Array, any shape, int or float
            Global training step (0-indexed).  An array (e.g. a traced JAX step)
            is handled with its own array namespace, without Python branches.

        Returns
        -------
        float or Array, same shape as ``step``, float
            The learning rate; a Python float when ``step`` is a Python/NumPy
            scalar.
        """
        scalar = isinstance(step, (int, float, np.generic))
        xp, tau = (np, float(step)) if scalar else _as_float_array(step)
        exponent = (tau - self.warmup_steps) / self.decay_steps
        if not self.smooth:
            exponent = xp.floor(exponent)
        decayed = self.start_lr * xp.exp(exponent * math.log(self.decay_rate))
        floor = xp.full_like(decayed, self.stop_lr)
        lr = xp.where(decayed > self.stop_lr, decayed, floor)
        if self.warmup_steps > 0:
            frac = tau / self.warmup_steps
            factor = self.warmup_start_factor
            warm = self.start_lr * (factor + (1.0 - factor) * frac)
            lr = xp.where(tau < self.warmup_steps, warm, lr)
        return float(lr) if scalar else lr


def prefactor(start: float, limit: float, lr: Any, start_lr: float) -> Any:
    r"""Interpolate a loss prefactor with the learning rate.

    .. math:: p = p_{limit} + (p_{start} - p_{limit})\,\gamma/\gamma_0

    Parameters
    ----------
    start : float
        ``start_pref_*``, the prefactor at :math:`\gamma = \gamma_0`.
    limit : float
        ``limit_pref_*``, the prefactor as :math:`\gamma \to 0`.
    lr : float or Array, shape ()
        Current learning rate :math:`\gamma`.
    start_lr : float
        Initial learning rate :math:`\gamma_0`.

    Returns
    -------
    float or Array, shape ()
        The prefactor (before multiplying by the label's ``find_*`` flag).
    """
    return limit + (start - limit) * (lr / start_lr)


def _as_float_array(step: Any) -> tuple[Any, Any]:
    """Return the namespace of ``step`` and ``step`` cast to its default float."""
    xp = array_api_compat.array_namespace(step)
    if not xp.isdtype(step.dtype, "real floating"):
        dtype = xp.__array_namespace_info__().default_dtypes()["real floating"]
        step = xp.astype(step, dtype)
    return xp, step


def _check_positive(key: str, value: float) -> None:
    """Raise ``ConfigError`` unless ``value`` is a finite number > 0."""
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value)):
        raise ConfigError(f"{key} = {value!r} must be a finite number > 0")
    if value <= 0:
        raise ConfigError(f"{key} = {value!r} must be > 0")
