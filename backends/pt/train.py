"""The PyTorch training step: energy loss with autograd forces, Adam, optional data parallel.

Functional core::

    state = build(model_dict, optimizer_config)        # TrainState
    metrics = loss_and_grad(state, batch, prefactors)  # loss, metrics; gradients in .grad
    apply_update(state, lr)                            # Adam (dpmodel.training.adam) on flat buffers
    state_dict(state) / load_state_dict(state, flat)   # bitwise checkpoints

and :class:`BackendTrainer`, the :mod:`dpmodel.training.protocol` class over it.
The loss is :func:`dpmodel.training.loss.energy_loss` (SPEC 8.3) on the outputs of
:func:`backends.pt.model.evaluate` with ``create_graph=True``; the update is
:func:`dpmodel.training.adam.adam_update` applied to every trainable parameter.

On CUDA, ``index_add`` sums in a nondeterministic order, so GPU runs agree with CPU runs
to rounding (about 1e-14 relative) but are not bitwise reproducible.

Data parallel: under ``torchrun`` (``WORLD_SIZE`` > 1) the ranks join a process group
(gloo on CPU, nccl on GPU) and start from rank 0's parameters; every rank receives the
same global batch, keeps its share of the frames (``numpy.array_split``) and scales its
loss by ``local_frames / global_frames``, so the sum of the ranks' gradients (one
``all_reduce`` per flat gradient buffer after the backward pass) is the gradient of the
global-batch loss and the loss curve equals one process's. :func:`close` ends the group:
its worker threads must be joined before the interpreter exits, which
``DistributedDataParallel`` would prevent (it keeps the group alive).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from backends.pt.flat_adam import FlatGroup, flatten
from backends.pt.io import default_device
from backends.pt.modules import model_from_dict
from dpmodel.training.adam import BETA1, BETA2, EPSILON, clip_scale
from dpmodel.training.loss import energy_loss

_LABELS = ("energy", "force", "virial")


@dataclass
class TrainState:
    """Model, optimizer moments and counters of one training run.

    Attributes
    ----------
    model : torch ``EnergyModel`` (trainable parameters are ``nn.Parameter``)
    m, v : Adam moments by parameter name (views of the ``groups`` buffers)
    step : number of Adam updates applied
    owns_group : whether :func:`build` made the torch.distributed process group
    groups : the trainable parameters, their gradients and moments as flat buffers
        (:func:`backends.pt.flat_adam.flatten`)
    """

    model: Any
    device: torch.device
    beta1: float = BETA1
    beta2: float = BETA2
    eps: float = EPSILON
    max_norm: float | None = None
    m: dict[str, torch.Tensor] = field(default_factory=dict)
    v: dict[str, torch.Tensor] = field(default_factory=dict)
    step: int = 0
    owns_group: bool = False  # build() made the torch.distributed process group; close() ends it
    groups: list[FlatGroup] = field(default_factory=list)
    _parameters: dict[str, torch.nn.Parameter] | None = field(default=None, repr=False)

    def parameters(self) -> dict[str, torch.nn.Parameter]:
        """Trainable parameters by name; listed once (``load_state_dict`` copies into the same ones)."""
        if self._parameters is None:
            self._parameters = {name: p for name, p in self.model.named_parameters() if p.requires_grad}
        return self._parameters


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the current torch.distributed job, ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _init_distributed(device: torch.device) -> bool:
    """Join the torchrun job named by the environment; whether this call made the process group."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return True
    return False


def build(model_dict: dict, optimizer_config: Mapping[str, Any] | None = None,
          device: str | torch.device | None = None) -> TrainState:
    """A :class:`TrainState` for a serialized model.

    Parameters
    ----------
    model_dict : serialized model (``EnergyModel.serialize()``)
    optimizer_config : optional ``beta1``, ``beta2``, ``eps``, ``gradient_max_norm``
    device : torch device; default :func:`backends.pt.io.default_device` (``DEVICE=cpu``
        forces the CPU; under torchrun ``LOCAL_RANK`` picks the GPU)
    """
    config = dict(optimizer_config or {})
    device = default_device() if device is None else torch.device(device)
    owns_group = _init_distributed(device)
    model = model_from_dict(model_dict).to(device).train()
    state = TrainState(model, device, float(config.get("beta1", BETA1)), float(config.get("beta2", BETA2)),
                       float(config.get("eps", EPSILON)), config.get("gradient_max_norm"), owns_group=owns_group)
    params = state.parameters()
    state.groups = flatten(params)
    for group in state.groups:
        state.m.update(group.views(group.m))
        state.v.update(group.views(group.v))
    if world()[1] > 1:
        for group in state.groups:
            torch.distributed.broadcast(group.values, src=0)
    return state


def _local_frames(nframes: int) -> tuple[slice, float]:
    """This rank's frames of a global batch and its loss weight (1.0 in one process);
    the weights of the ranks sum to 1."""
    rank, size = world()
    if size == 1 or nframes < size:  # too few frames to split: every rank takes the whole batch
        return slice(0, nframes), 1.0 / size
    bounds = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(nframes), size)])
    local = slice(int(bounds[rank]), int(bounds[rank + 1]))
    return local, (local.stop - local.start) / nframes


def _tensor(value: Any, device: torch.device, dtype: torch.dtype = torch.float64) -> torch.Tensor | None:
    return None if value is None else torch.as_tensor(np.array(value), dtype=dtype, device=device)


def forward_loss(state: TrainState, batch: Mapping[str, Any], prefactors: Mapping[str, float],
                 training: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss (0-d, in the graph when ``training``) and metrics of this rank's frames of ``batch``."""
    frames, weight = _local_frames(len(batch["atype"]))
    dev = state.device
    get = lambda key, dtype=torch.float64: _tensor(None if batch.get(key) is None else batch[key][frames], dev, dtype)
    # train() visits every submodule: only on a change of mode
    if state.model.training != training:
        state.model.train(training)
    pred = state.model(get("coord"), get("atype", torch.int64), get("box"), get("fparam"), get("aparam"))
    if not training:
        pred = {k: v.detach() for k, v in pred.items()}
    label = {key: get(key) for key in _LABELS}
    label.update({f"find_{key}": float(batch.get(f"find_{key}", 1.0)) for key in _LABELS})
    loss, metrics = energy_loss(pred, label, prefactors, int(np.shape(batch["atype"])[1]))
    return loss * weight, metrics


def loss_and_grad(state: TrainState, batch: Mapping[str, Any],
                  prefactors: Mapping[str, float]) -> dict[str, float]:
    """Loss and metrics of ``batch``; leaves the loss gradient in each parameter's ``.grad``.

    Returns
    -------
    dict of floats: ``loss``, ``rmse``, ``rmse_e``, ``rmse_f``, ``rmse_v`` (global batch)
    """
    params = state.parameters()
    for group in state.groups:  # the parameters' .grad are views of these buffers: autograd adds into them
        group.zero_grads(params)
    loss, metrics = forward_loss(state, batch, prefactors, training=True)
    loss.backward()
    if world()[1] > 1:  # each rank's loss carries its share of the batch: the gradients add up
        for group in state.groups:
            torch.distributed.all_reduce(group.grads)
    return _reduce_metrics(loss, metrics, batch)


def evaluate(state: TrainState, batch: Mapping[str, Any], prefactors: Mapping[str, float]) -> dict[str, float]:
    """Loss and metrics of ``batch`` without gradients or update."""
    loss, metrics = forward_loss(state, batch, prefactors, training=False)
    return _reduce_metrics(loss.detach(), metrics, batch)


def _reduce_metrics(loss: torch.Tensor, metrics: dict[str, torch.Tensor], batch: Mapping[str, Any]) -> dict[str, float]:
    """Floats of the global batch: per-rank mean squares combined with frame weights."""
    natoms = int(np.shape(batch["atype"])[1])
    norm = {"e": 1.0 / natoms, "f": 1.0, "v": 1.0 / natoms}
    _, size = world()
    if size == 1:
        out = {key: float(value.detach()) for key, value in metrics.items()}
        out["loss"] = float(loss.detach())
        return out
    # loss already carries local/global; mean squares get the same weight
    _, weight = _local_frames(len(batch["atype"]))
    values = [loss.detach()] + [(metrics[f"rmse_{k}"].detach() / norm[k]) ** 2 * weight for k in norm]
    packed = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=loss.device) for v in values])
    torch.distributed.all_reduce(packed)
    total, *squares = packed.tolist()
    out = {f"rmse_{k}": float(np.sqrt(s)) * norm[k] for k, s in zip(norm, squares)}
    out["rmse"] = float(np.sqrt(total))
    out["loss"] = total
    return out


def apply_update(state: TrainState, lr: float) -> None:
    """One Adam update (:func:`dpmodel.training.adam.adam_update`) of every trainable parameter.

    :meth:`backends.pt.flat_adam.FlatGroup.adam` runs once per flat buffer of
    ``state.groups``: about ten element-wise operations for all parameters together. With
    ``gradient_max_norm`` the gradients are scaled first (:func:`dpmodel.training.adam.clip_scale`).
    """
    grads = [view for group in state.groups for view in group.grad_views.values()]
    scale = clip_scale(grads, state.max_norm)
    state.step += 1
    with torch.no_grad():
        for group in state.groups:
            group.adam(state.step, lr, state.beta1, state.beta2, state.eps, scale)


def state_dict(state: TrainState) -> dict[str, np.ndarray]:
    """Parameters, buffers, Adam moments and step as a flat dict of NumPy arrays (bitwise)."""
    flat = {f"model/{k}": v.detach().cpu().numpy().copy() for k, v in state.model.state_dict().items()}
    flat.update({f"adam_m/{k}": v.cpu().numpy().copy() for k, v in state.m.items()})
    flat.update({f"adam_v/{k}": v.cpu().numpy().copy() for k, v in state.v.items()})
    flat["adam_step"] = np.asarray(state.step, dtype=np.int64)
    return flat


def load_state_dict(state: TrainState, flat: Mapping[str, np.ndarray]) -> None:
    """Restore what :func:`state_dict` returned, bitwise."""
    prefix = "model/"
    model_state = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in flat.items() if k.startswith(prefix)}
    state.model.load_state_dict(model_state, strict=True)
    with torch.no_grad():  # into the flat buffers the moments are views of
        for name in state.m:
            state.m[name].copy_(torch.from_numpy(np.array(flat[f"adam_m/{name}"])))
            state.v[name].copy_(torch.from_numpy(np.array(flat[f"adam_v/{name}"])))
    state.step = int(np.asarray(flat["adam_step"]))


def close(state: TrainState) -> None:
    """Destroy the process group :func:`build` made, if any; the model stays usable on this rank."""
    if state.owns_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    state.owns_group = False


class BackendTrainer:
    """The :class:`dpmodel.training.protocol.BackendTrainer` of the PyTorch backend."""

    def __init__(self, model_dict: dict, config: dict, device: str | torch.device | None = None) -> None:
        training = config.get("training", {}) if isinstance(config, dict) else {}
        self.train_state = build(model_dict, {"gradient_max_norm": training.get("gradient_max_norm")}, device)

    @property
    def is_main(self) -> bool:
        """Whether this process writes the files (rank 0 of a data-parallel job)."""
        return world()[0] == 0

    def step(self, batch: dict, lr: float, prefactors: Mapping[str, float]) -> dict[str, float]:
        metrics = loss_and_grad(self.train_state, batch, prefactors)
        apply_update(self.train_state, lr)
        return metrics

    def evaluate(self, batch: dict, prefactors: Mapping[str, float]) -> dict[str, float]:
        return evaluate(self.train_state, batch, prefactors)

    def model_dict(self) -> dict:
        return self.train_state.model.serialize()

    def state(self) -> dict[str, np.ndarray]:
        return state_dict(self.train_state)

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        load_state_dict(self.train_state, state)

    def close(self) -> None:
        """End the data-parallel process group this trainer made (its threads would abort the exit)."""
        close(self.train_state)
