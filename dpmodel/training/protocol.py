"""The backend training protocol: what ``dp train`` asks of a backend, and how it finds it.

Everything backend-neutral (input checking, data and batch order, statistics, the
learning rate, loss prefactors, logging, checkpoints) lives in :mod:`dpmodel.training`.
A backend supplies one class, ``BackendTrainer``, with the methods of
:class:`BackendTrainer` below. It is looked up as

1. ``BackendTrainer`` in the backend's ``train`` module (``BackendInfo.train``), else
2. ``BackendTrainer`` in the sibling module ``trainer`` of the backend package
   (``backends/<name>/trainer.py``, glue over a ``train.py`` with another API).

Batches
-------
``batch`` is the NumPy dict of :meth:`dpmodel.data.DeepmdSystem.frames`: ``coord``
(nb, nat, 3) Å, ``box`` (nb, 9) Å or None (no periodicity), ``atype`` (nb, nat) int,
``energy`` (nb, 1) eV, ``force`` (nb, nat, 3) eV/Å, ``virial`` (nb, 9) eV,
``find_energy``/``find_force``/``find_virial`` (Python floats 1.0/0.0) and
``natoms_per_type`` (nb, ntypes). All frames of a batch come from one system.

Loss, metrics, optimizer
------------------------
The loss is :func:`dpmodel.training.loss.energy_loss` (SPEC 8.3), evaluated inside the
backend so that its autodiff sees it; ``prefactors`` is ``{"e", "f", "v"}`` from
:func:`dpmodel.training.loss.prefactors` (the ``find_*`` flags are applied inside
``energy_loss``). ``step`` evaluates the loss and metrics on the batch with the
current parameters, then applies one update with learning rate ``lr``;
``evaluate`` does the same without the update. Both return the metrics dict of
``energy_loss`` (``rmse``, ``rmse_e``, ``rmse_f``, ``rmse_v``): 0-d values of any
framework, converted with ``float()`` only when the trainer displays them.
The update is Adam as written in :mod:`dpmodel.training.adam` (the same formula in
every backend keeps loss curves identical across backends); with
``training/gradient_max_norm`` set, the gradient is first clipped to that global
2-norm.

State
-----
``state()`` returns a flat ``dict[str, numpy.ndarray]`` holding everything the
backend needs to continue the identical trajectory: parameters, optimizer moments and
its step counter. ``load_state(state)`` restores it exactly (bitwise). The keys are
the backend's own business; the checkpoint stores them as they are.

Optional members
----------------
``is_main`` (property, default True): whether this process writes the files (False on
data-parallel ranks other than the first). ``close()``: called once when training ends,
normally or not, to release what the backend set up for it (a data-parallel process
group, for instance). ``set_max_neighbors(max_count)``: called once before training
when the neighbour statistics are known, with the most neighbours of each type within
``rcut`` of any atom of the training and validation data (a list of ints); a backend may
then leave out the neighbour-list slots that no frame fills (their constant contribution
is added back: :func:`dpmodel.neighbor.slot_widths`). ``stage(batch)``: the backend's host
work on a batch that depends on its frames alone (ghost atoms, neighbour list, layout); the
trainer then passes what it returns to ``step`` in place of the batch, and stages the next
batch on a background thread while ``step`` runs (:mod:`dpmodel.training.prefetch`), so
``stage`` must not touch the parameters. ``step`` and ``evaluate`` still accept plain batches.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

from dpmodel.errors import ConfigError
from dpmodel.registry import BackendInfo

__all__ = ["BackendTrainer", "check_trainable", "trainer_class"]

Metrics = Mapping[str, Any]


@runtime_checkable
class BackendTrainer(Protocol):
    """One backend's training step over a model dict.

    Parameters
    ----------
    model_dict : dict
        The serialized model (:meth:`dpmodel.model.EnergyModel.serialize`) with its
        initial parameters and statistics, identical for every backend.
    config : dict
        The normalized ``input.json`` (read ``loss`` and ``training``; the model is
        fully described by ``model_dict``).
    """

    def __init__(self, model_dict: dict, config: dict) -> None: ...

    def step(self, batch: dict, lr: float, prefactors: Mapping[str, float]) -> Metrics:
        """Loss and metrics on ``batch`` (current parameters), then one Adam update.

        Parameters
        ----------
        batch : dict
            NumPy arrays of one batch (module docstring).
        lr : float
            Learning rate of this step.
        prefactors : mapping
            ``{"e": p_e, "f": p_f, "v": p_v}``, before the ``find_*`` flags.

        Returns
        -------
        mapping
            ``rmse``, ``rmse_e``, ``rmse_f``, ``rmse_v`` (0-d values).
        """
        ...

    def evaluate(self, batch: dict, prefactors: Mapping[str, float]) -> Metrics:
        """The metrics of :meth:`step` on ``batch`` without any update."""
        ...

    def model_dict(self) -> dict:
        """The current model as a serialized dict (NumPy arrays)."""
        ...

    def state(self) -> dict[str, np.ndarray]:
        """Parameters, optimizer moments and step counter as NumPy arrays."""
        ...

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` returned, bitwise."""
        ...


def check_trainable(info: BackendInfo) -> None:
    """Fail fast, without importing the framework, if ``info`` cannot train here.

    Raises
    ------
    ConfigError
        If the backend declares no train module or its framework is not installed.
    """
    if info.train is None:
        raise ConfigError(f"backend {info.name!r} cannot train (it declares no train module)")
    missing = [m for m in info.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"backend {info.name!r} needs {', '.join(missing)}, which is not installed; "
            f"install it with: pip install '.[{info.name}]'"
        )


def trainer_class(info: BackendInfo) -> type:
    """The ``BackendTrainer`` class of a backend (module docstring for the lookup); imports the framework.

    Raises
    ------
    ConfigError
        If the backend has no training support, naming what is missing.
    """
    check_trainable(info)
    candidates = [info.train, info.train.rsplit(".", 1)[0] + ".trainer"]
    for path in candidates:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as err:
            if err.name is not None and path.startswith(err.name):
                continue
            raise
        found = getattr(module, "BackendTrainer", None)
        if found is not None:
            return found
    raise ConfigError(
        f"backend {info.name!r} cannot train yet: neither {candidates[0]} nor {candidates[1]} "
        "defines BackendTrainer (see dpmodel.training.protocol)"
    )
