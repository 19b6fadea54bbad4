r"""The energy loss and its metrics (SPEC 8.3), written once on the array API.

With prefactors :math:`p_x = p_x^{limit} + (p_x^{start} - p_x^{limit})\,\gamma/\gamma_0`
(:func:`prefactors`; :math:`\gamma` the learning rate, the start rate during warmup)
multiplied by the batch's ``find_x`` flag, and :math:`N` atoms per frame,

.. math::
    L = \frac{p_e}{N}\,\overline{(E - \hat E)^2}
      + p_f\,\overline{(F - \hat F)^2}
      + \frac{p_v}{N}\,\overline{(\Xi - \hat\Xi)^2},

means over frames (energy), frames x atoms x 3 (force) and frames x 9 (virial).
Energy and virial use :math:`1/N`, not :math:`1/N^2`, as DeePMD-kit. Metrics:
``rmse_e`` :math:`= \sqrt{\overline{(E-\hat E)^2}}/N` (eV/atom), ``rmse_f``
:math:`= \sqrt{\overline{(F-\hat F)^2}}` (eV/Å), ``rmse_v``
:math:`= \sqrt{\overline{(\Xi-\hat\Xi)^2}}/N` (eV/atom) and ``rmse`` :math:`=\sqrt L`.
A term is active when its start or limit prefactor is nonzero; metrics of a label
the batch lacks are shown as NaN (:func:`displayed`).

Backends call :func:`energy_loss` on their own arrays inside their autodiff, so the
formula exists once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dpmodel.errors import ConfigError
from dpmodel.schedule import prefactor
from dpmodel.xp import Array, array_namespace

__all__ = ["METRICS", "TERMS", "active_terms", "batch_labels", "check_loss", "displayed", "energy_loss",
           "prefactors", "weighted_mean"]

#: loss label -> (prediction / label key, ``find_*`` flag)
TERMS: dict[str, tuple[str, str]] = {"e": ("energy", "find_energy"), "f": ("force", "find_force"),
                                     "v": ("virial", "find_virial")}
#: metric -> the loss label whose data it needs (``None``: always shown)
METRICS: dict[str, str | None] = {"rmse": None, "rmse_e": "e", "rmse_f": "f", "rmse_v": "v"}
#: keys of the ``ener`` loss this project does not implement -> value meaning "off"
_UNSUPPORTED = {"start_pref_ae": 0.0, "limit_pref_ae": 0.0, "start_pref_pf": 0.0, "limit_pref_pf": 0.0,
                "start_pref_gf": 0.0, "limit_pref_gf": 0.0, "relative_f": None,
                "enable_atom_ener_coeff": False, "numb_generalized_coord": 0, "use_huber": False}


def check_loss(loss: Mapping[str, Any]) -> None:
    """Refuse loss options this project does not implement, naming the key.

    Raises
    ------
    ConfigError
        For a loss type other than ``ener`` or an unsupported term switched on.
    """
    if loss.get("type", "ener") != "ener":
        raise ConfigError(f"loss/type = {loss['type']!r} is not supported; use 'ener'")
    for key, off in _UNSUPPORTED.items():
        if loss.get(key, off) != off:
            raise ConfigError(f"loss/{key} = {loss[key]!r} is not supported by this project; "
                              f"remove it or set it to {off!r}")


def active_terms(loss: Mapping[str, Any]) -> tuple[str, ...]:
    """Labels (``"e"``, ``"f"``, ``"v"``) whose start or limit prefactor is nonzero."""
    return tuple(k for k in TERMS if loss.get(f"start_pref_{k}", 0.0) or loss.get(f"limit_pref_{k}", 0.0))


def prefactors(loss: Mapping[str, Any], lr: float, start_lr: float) -> dict[str, float]:
    """Prefactors ``{"e", "f", "v"}`` at learning rate ``lr`` (0.0 for inactive terms).

    Parameters
    ----------
    loss : mapping
        The normalized ``loss`` section.
    lr : float
        Learning rate used for the interpolation (DeePMD uses ``start_lr`` during warmup).
    start_lr : float
        ``learning_rate/start_lr``.
    """
    active = active_terms(loss)
    return {k: float(prefactor(loss[f"start_pref_{k}"], loss[f"limit_pref_{k}"], lr, start_lr))
            if k in active else 0.0 for k in TERMS}


def energy_loss(pred: Mapping[str, Array], label: Mapping[str, Any], prefs: Mapping[str, Any],
                natoms: int) -> tuple[Array, dict[str, Array]]:
    """The weighted loss and its metrics (module docstring for the formula).

    Parameters
    ----------
    pred : mapping
        ``energy`` (nf, 1) eV, ``force`` (nf, nat, 3) eV/Å, ``virial`` (nf, 9) eV;
        arrays of one namespace (torch, JAX, NumPy, ...).
    label : mapping
        The batch: the same keys, arrays already in the namespace, dtype and device of
        ``pred``, plus ``find_energy``, ``find_force``, ``find_virial`` (floats or 0-d
        arrays).
    prefs : mapping
        ``{"e", "f", "v"}`` from :func:`prefactors` (floats or 0-d arrays); a term with
        a plain ``0.0`` prefactor is skipped.
    natoms : int
        Atoms per frame :math:`N`.

    Returns
    -------
    loss : Array, shape (), float
    metrics : dict
        ``rmse``, ``rmse_e``, ``rmse_f``, ``rmse_v``: 0-d arrays (inactive terms 0).
    """
    xp = array_namespace(pred["energy"])
    norm = {"e": 1.0 / natoms, "f": 1.0, "v": 1.0 / natoms}
    loss = xp.sum(pred["energy"]) * 0.0  # a 0-d zero on the predictions' device, in the graph
    metrics = {}
    for key, (name, flag) in TERMS.items():
        if isinstance(prefs[key], (int, float)) and prefs[key] == 0.0:
            metrics[f"rmse_{key}"] = xp.zeros_like(loss)
            continue
        value = pred[name]
        diff = value - xp.reshape(label[name], value.shape)
        l2 = xp.mean(diff * diff)
        loss = loss + prefs[key] * label[flag] * norm[key] * l2
        metrics[f"rmse_{key}"] = xp.sqrt(l2) * norm[key]
    metrics["rmse"] = xp.sqrt(loss)
    return loss, metrics


def batch_labels(batch: Mapping[str, Any]) -> dict[str, Any]:
    """The labels of a NumPy batch in the shapes of :func:`energy_loss`, for compiled programs.

    ``energy`` (nf, 1) eV, ``force`` (nf, nat, 3) eV/Å and ``virial`` (nf, 9) eV as float64,
    zeros where the batch has no such label; ``find_energy``, ``find_force`` and
    ``find_virial`` as floats, the batch's flag, else 1.0 with the label and 0.0 without.
    """
    nf, nat = np.shape(batch["atype"])
    shapes = {"energy": (nf, 1), "force": (nf, nat, 3), "virial": (nf, 9)}
    labels: dict[str, Any] = {}
    for key, flag in TERMS.values():
        value = batch.get(key)
        labels[key] = np.zeros(shapes[key]) if value is None else np.asarray(value, np.float64).reshape(shapes[key])
        labels[flag] = float(batch.get(flag, 0.0 if value is None else 1.0))
    return labels


def displayed(metrics: Mapping[str, Any], batch: Mapping[str, Any], active: Sequence[str]) -> dict[str, float]:
    """Metrics as floats for display: only ``rmse`` and active terms; NaN where the label is absent."""
    out = {}
    for name, term in METRICS.items():
        if term is not None and term not in active:
            continue
        missing = term is not None and not batch[TERMS[term][1]]
        out[name] = math.nan if missing else float(metrics[name])
    return out


def weighted_mean(results: Sequence[Mapping[str, float]], natoms: Sequence[int]) -> dict[str, float]:
    """Atom-weighted mean of metric dicts over validation batches (DeePMD-PT's rule)."""
    total = float(sum(natoms))
    return {k: sum(r[k] * n for r, n in zip(results, natoms)) / total for k in results[0]}
