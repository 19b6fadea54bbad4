"""The TensorFlow training step: energy loss with GradientTape forces, Adam, one trace each.

Functional core::

    state = build(model_dict, max_norm=None)                 # TrainState
    staged = stage(state, batch)                             # host work; may run ahead on another thread
    loss, metrics, grads = loss_and_grad(state, batch, prefactors)
    apply_update(state, grads, lr)                           # Adam (dpmodel.training.adam)
    loss, metrics = train_step(state, batch, prefactors, lr) # both as one compiled call
    state_dict(state) / load_state_dict(state, flat)         # bitwise checkpoints
    serialize(state)                                         # the current model dict

and :class:`BackendTrainer`, the :mod:`dpmodel.training.protocol` class over it, whose steps
are :func:`train_step`. The loss
is :func:`dpmodel.training.loss.energy_loss` (SPEC 8.3) on the outputs of
:func:`backends.tf.model.energy_and_forces`, differentiated by a second ``GradientTape``;
the update is :func:`dpmodel.training.adam.adam_update` (after
:func:`~dpmodel.training.adam.clip_scale` with ``gradient_max_norm``). Both run in
``tf.function`` objects with fixed input signatures (``None`` frame and atom dimensions), so a
whole training traces each once, whatever the systems (``TrainState.trace_counts``), except
that batches whose atoms are sorted by type (as DeePMD-kit data usually are) get functions of
their own per atom composition, in which each fitting net runs on its own block of atoms
instead of on every atom under a type mask: half the fitting work for two types, 13 to 18 %
less time per water step (paired runs of 300 steps). Once the trainer knows the most neighbours
of each type in the data (:meth:`BackendTrainer.set_max_neighbors`), the neighbour lists keep
only the slots some frame fills (:func:`dpmodel.neighbor.slot_widths`), in functions of their
own; the embedding nets then skip the padding slots, whose constant contribution is added
back. XLA compiles them
(:mod:`backends.tf.xla`; ``DP_TF_XLA=0`` turns it off): the loss, the metrics and the fused
step per batch shape, the update once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf

from dpmodel.model_factory import model_from_dict
from dpmodel.neighbor import slot_widths
from dpmodel.training.adam import adam_update, clip_scale
from dpmodel.training.loss import TERMS, active_terms, batch_labels, energy_loss

from backends.tf import xla
from backends.tf.model import INPUT_NAMES, energy_and_forces, input_signature, prepare_inputs
from backends.tf.modules import EnergyModel
from backends.tf.xp import TFArray, unwrap

__all__ = ["BackendTrainer", "StagedBatch", "TrainState", "apply_update", "build", "load_state_dict", "loss_and_grad",
           "serialize", "set_max_neighbors", "stage", "state_dict", "train_step"]

_LABEL_SPECS = [tf.TensorSpec([None, 1], tf.float64, name="energy"),
                tf.TensorSpec([None, None, 3], tf.float64, name="force"),
                tf.TensorSpec([None, 9], tf.float64, name="virial"),
                tf.TensorSpec([3], tf.float64, name="find"),
                tf.TensorSpec([3], tf.float64, name="prefactors"),
                tf.TensorSpec([], tf.float64, name="natoms")]


@dataclass
class TrainState:
    """Parameters, Adam moments and the compiled step functions of one model.

    Attributes
    ----------
    model : the TensorFlow energy model being trained
    names, params : trainable parameters and their names (``EnergyModel.named_variables``)
    adam_m, adam_v : Adam moments, one variable per parameter
    step : number of updates applied (int64 variable)
    active : loss terms (``"e"``, ``"f"``, ``"v"``) in the graph; the others are skipped
    max_norm : ``training/gradient_max_norm`` or None
    trace_counts : traces of the ``loss``, ``metrics`` and ``update`` functions
    functions : the compiled functions, by name, and by ``(name, blocks, widths)`` for batches
        sorted by type (``blocks``) or with neighbour lists cut to ``widths``
    widths : neighbour-list slots kept per type block (:meth:`BackendTrainer.set_max_neighbors`),
        or None for all of ``sel``
    """

    model: EnergyModel
    names: list[str]
    params: list[tf.Variable]
    adam_m: list[tf.Variable]
    adam_v: list[tf.Variable]
    step: tf.Variable
    active: tuple[str, ...] = ("e", "f", "v")
    max_norm: float | None = None
    trace_counts: dict[str, int] = field(default_factory=lambda: {"loss": 0, "metrics": 0, "update": 0})
    functions: dict[str | tuple, Any] = field(default_factory=dict)
    widths: tuple[int, ...] | None = None


def build(model_dict: dict, active: Sequence[str] = ("e", "f", "v"), max_norm: float | None = None) -> TrainState:
    """A training state from a serialized model dict (``type_embedding`` and two-side nets allowed)."""
    model = model_from_dict(model_dict, EnergyModel)
    named = [(n, v) for n, v in model.named_variables() if v.trainable]
    params = [v for _, v in named]
    state = TrainState(
        model=model, names=[n for n, _ in named], params=params,
        adam_m=[tf.Variable(tf.zeros_like(p), trainable=False) for p in params],
        adam_v=[tf.Variable(tf.zeros_like(p), trainable=False) for p in params],
        step=tf.Variable(0, dtype=tf.int64, trainable=False), active=tuple(active),
        max_norm=None if max_norm is None else float(max_norm))
    lr_spec = tf.TensorSpec([], tf.float64, name="lr")
    update_specs = [[tf.TensorSpec(p.shape, p.dtype) for p in params], lr_spec]
    # XLA: one fused program instead of ~15 executor ops per parameter (about 4 ms a step for water)
    state.functions["update"] = tf.function(lambda g, lr: _adam_graph(state, g, lr), input_signature=update_specs,
                                            autograph=False, jit_compile=xla.enabled())
    _add_batch_functions(state, None, None)
    return state


def _add_batch_functions(state: TrainState, blocks: tuple[int, ...] | None, widths: tuple[int, ...] | None) -> None:
    """The ``loss``, ``metrics`` and ``step`` functions of batches whose atoms are sorted by type in
    ``blocks`` (atom counts per type; None: any order) and whose neighbour lists keep ``widths``
    slots per type block (None: ``sel``), under those names for (None, None), else under
    ``(name, blocks, widths)``: a model's fitting nets run on their own blocks only, a static slice
    each, so each atom composition of the data gets its own trace."""
    model, fitting = state.model, state.model.fitting
    nnei = model.descriptor.nnei if widths is None else sum(widths)
    signature = [*input_signature(nnei, fitting.numb_fparam, fitting.numb_aparam), *_LABEL_SPECS]
    lr_spec = tf.TensorSpec([], tf.float64, name="lr")
    layout = {"blocks": blocks, "widths": widths}
    loss = tf.function(lambda *a: _loss_graph(state, True, *a, **layout), input_signature=signature, autograph=False)
    metrics = tf.function(lambda *a: _loss_graph(state, False, *a, **layout), input_signature=signature,
                          autograph=False)
    # loss, gradients and update in one call: the gradients never leave the program, and the
    # per-call cost of a function of one argument per parameter (about 3 ms for water) is not paid
    step = tf.function(lambda *a: _step_graph(state, *a, **layout), input_signature=[*signature, lr_spec],
                       autograph=False)
    # XLA from a batch shape's first step, so that a restarted run repeats the same arithmetic
    # the metrics too: validation at every display, a third less time per water frame, compiled once
    functions = {"loss": xla.HotShapes(loss, signature, hot_after=1),
                 "metrics": xla.HotShapes(metrics, signature, hot_after=1),
                 "step": xla.HotShapes(step, [*signature, lr_spec], hot_after=1)}
    for name, function in functions.items():
        state.functions[_function_key(name, blocks, widths)] = function


def _function_key(name: str, blocks: tuple[int, ...] | None, widths: tuple[int, ...] | None) -> str | tuple:
    return name if blocks is None and widths is None else (name, blocks, widths)


def _batch_function(state: TrainState, name: str, blocks: tuple[int, ...] | None,
                    widths: tuple[int, ...] | None = None) -> Any:
    key = _function_key(name, blocks, widths)
    if key not in state.functions:
        _add_batch_functions(state, blocks, widths)
    return state.functions[key]


def _loss_graph(state: TrainState, with_grad: bool, coord_ext, atype_ext, nlist, mapping, fparam, aparam,
                energy, force, virial, find, pref, natoms, blocks: tuple[int, ...] | None = None,
                widths: tuple[int, ...] | None = None):
    state.trace_counts["loss" if with_grad else "metrics"] += 1
    with tf.GradientTape() as tape:
        out = energy_and_forces(state.model, coord_ext, atype_ext, nlist, mapping, fparam, aparam, blocks, widths)
        pred = {k: TFArray(out[k]) for k in ("energy", "force", "virial")}
        label = {"energy": TFArray(energy), "force": TFArray(force), "virial": TFArray(virial)}
        prefs = {}
        for i, (key, (_, flag)) in enumerate(TERMS.items()):
            label[flag] = TFArray(find[i])
            prefs[key] = TFArray(pref[i]) if key in state.active else 0.0
        loss, metrics = energy_loss(pred, label, prefs, TFArray(natoms))
        loss = unwrap(loss)
    metrics = {k: unwrap(v) for k, v in metrics.items()}
    if not with_grad:
        return loss, metrics
    grads = tape.gradient(loss, state.params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return loss, metrics, grads


def _adam_graph(state: TrainState, grads, lr):
    state.trace_counts["update"] += 1
    if state.max_norm is not None:
        scale = unwrap(clip_scale([TFArray(g) for g in grads], state.max_norm))
        grads = [g * tf.cast(scale, g.dtype) for g in grads]
    state.step.assign_add(1)
    for p, g, m, v in zip(state.params, grads, state.adam_m, state.adam_v):
        t, rate = tf.cast(state.step, p.dtype), tf.cast(lr, p.dtype)
        new_p, new_m, new_v = adam_update(TFArray(tf.convert_to_tensor(p)), TFArray(g), TFArray(tf.convert_to_tensor(m)),
                                          TFArray(tf.convert_to_tensor(v)), TFArray(t), TFArray(rate))
        m.assign(unwrap(new_m))
        v.assign(unwrap(new_v))
        p.assign(unwrap(new_p))
    return state.step


def _step_graph(state: TrainState, *inputs, blocks: tuple[int, ...] | None = None,
                widths: tuple[int, ...] | None = None):
    loss, metrics, grads = _loss_graph(state, True, *inputs[:-1], blocks=blocks, widths=widths)
    _adam_graph(state, grads, inputs[-1])
    return loss, metrics


@dataclass(frozen=True)
class StagedBatch:
    """A batch's host work (:func:`stage`): the loss functions' inputs up to the prefactors
    (tensors), its atom count, and its layout (type blocks, neighbour-list widths)."""

    inputs: list
    natoms: np.float64
    layout: tuple


def stage(state: TrainState, batch: Mapping[str, Any] | StagedBatch, compiled_layout: bool = True) -> StagedBatch:
    """Ghost atoms, the neighbour list cut to the batch's layout, and the labels of a NumPy batch
    (touches no parameter, so it may run on another thread during a step). Without
    ``compiled_layout``: all of ``sel`` and no type blocks, the layout of any batch."""
    if isinstance(batch, StagedBatch):
        return batch
    model, fitting = state.model, state.model.fitting
    atype = np.asarray(batch["atype"])
    nat = atype.shape[1]
    inputs = prepare_inputs(batch["coord"], batch.get("box"), atype, model.get_rcut(), model.get_sel(),
                            batch.get("fparam"), batch.get("aparam"), fitting.numb_fparam, fitting.numb_aparam,
                            fitting.default_fparam)
    inputs = [inputs[n] for n in INPUT_NAMES]
    layout = (None, None)
    if compiled_layout:
        inputs[2], layout = model.compiled_layout(atype, inputs[2], state.widths)
    labels = batch_labels(batch)
    values = [labels[key] for key, _ in TERMS.values()]
    find = np.array([labels[flag] for _, flag in TERMS.values()])
    # as tensors here: converting them is about half a millisecond a batch, off the step when staged ahead
    return StagedBatch([tf.convert_to_tensor(a) for a in (*inputs, *values, find)], np.float64(nat), layout)


def _run(state: TrainState, name: str, batch: Mapping[str, Any] | StagedBatch, prefactors: Mapping[str, float],
         *extra) -> Any:
    """Function ``name`` of the batch's layout (type blocks, neighbour-list widths) on the batch."""
    staged = stage(state, batch)
    pref = np.array([float(prefactors.get(k, 0.0)) for k in TERMS])
    return _batch_function(state, name, *staged.layout)(*staged.inputs, pref, staged.natoms, *extra)


def loss_and_grad(state: TrainState, batch: Mapping[str, Any],
                  prefactors: Mapping[str, float]) -> tuple[tf.Tensor, dict[str, tf.Tensor], list[tf.Tensor]]:
    """Loss, metrics (``rmse``, ``rmse_e``, ``rmse_f``, ``rmse_v``) and gradients on one batch.

    Parameters
    ----------
    batch : NumPy batch of :mod:`dpmodel.training.protocol` (``coord``, ``box``, ``atype``, labels,
        ``find_*`` flags; optional ``fparam``, ``aparam``), or its :func:`stage`
    prefactors : ``{"e": p_e, "f": p_f, "v": p_v}`` before the ``find_*`` flags
    """
    loss, metrics, grads = _run(state, "loss", batch, prefactors)
    return loss, metrics, list(grads)


def evaluate(state: TrainState, batch: Mapping[str, Any], prefactors: Mapping[str, float]) -> dict[str, tf.Tensor]:
    """The metrics of :func:`loss_and_grad` without gradients."""
    return _run(state, "metrics", batch, prefactors)[1]


def apply_update(state: TrainState, grads: Sequence[tf.Tensor], lr: float) -> None:
    """One Adam update of every trainable parameter with learning rate ``lr``."""
    state.functions["update"](list(grads), tf.constant(lr, tf.float64))


def train_step(state: TrainState, batch: Mapping[str, Any], prefactors: Mapping[str, float],
               lr: float) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """:func:`loss_and_grad` then :func:`apply_update` as one compiled call; loss and metrics."""
    return _run(state, "step", batch, prefactors, tf.constant(lr, tf.float64))


def set_max_neighbors(state: TrainState, max_count: Sequence[int]) -> None:
    """Batches with at most ``max_count[t]`` neighbours of type ``t`` per atom get neighbour lists of
    :func:`dpmodel.neighbor.slot_widths` slots (other batches keep all of ``sel``)."""
    state.widths = slot_widths(max_count, state.model.get_sel())


def state_dict(state: TrainState) -> dict[str, np.ndarray]:
    """``step``, ``param/<name>``, ``adam_m/<name>``, ``adam_v/<name>`` as NumPy arrays."""
    out = {"step": np.asarray(state.step.numpy())}
    for name, p, m, v in zip(state.names, state.params, state.adam_m, state.adam_v):
        out[f"param/{name}"], out[f"adam_m/{name}"], out[f"adam_v/{name}"] = p.numpy(), m.numpy(), v.numpy()
    return out


def load_state_dict(state: TrainState, arrays: Mapping[str, np.ndarray]) -> None:
    """Restore a :func:`state_dict` (bitwise) into a state built from the same model dict."""
    missing = [k for k in state_dict(state) if k not in arrays]
    if missing:
        raise KeyError(f"training state lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}; "
                       "was it written for another model?")
    state.step.assign(int(np.asarray(arrays["step"])))
    for name, p, m, v in zip(state.names, state.params, state.adam_m, state.adam_v):
        p.assign(arrays[f"param/{name}"])
        m.assign(arrays[f"adam_m/{name}"])
        v.assign(arrays[f"adam_v/{name}"])


def serialize(state: TrainState) -> dict:
    """The current model dict (NumPy arrays)."""
    return state.model.serialize()


class BackendTrainer:
    """:class:`dpmodel.training.protocol.BackendTrainer` of the TensorFlow backend."""

    def __init__(self, model_dict: dict, config: dict) -> None:
        training, loss = config.get("training", {}), config.get("loss", {})
        active = active_terms(loss) if loss else ("e", "f", "v")
        self.train_state = build(model_dict, active, training.get("gradient_max_norm"))

    def stage(self, batch: dict) -> StagedBatch:
        """The batch's host work (:func:`stage`), done ahead of its step."""
        return stage(self.train_state, batch)

    def step(self, batch: dict | StagedBatch, lr: float, prefactors: Mapping[str, float]) -> dict[str, tf.Tensor]:
        return train_step(self.train_state, batch, prefactors, lr)[1]

    def evaluate(self, batch: dict | StagedBatch, prefactors: Mapping[str, float]) -> dict[str, tf.Tensor]:
        return evaluate(self.train_state, batch, prefactors)

    def model_dict(self) -> dict:
        return serialize(self.train_state)

    def state(self) -> dict[str, np.ndarray]:
        return state_dict(self.train_state)

    def load_state(self, state: Mapping[str, np.ndarray]) -> None:
        load_state_dict(self.train_state, state)

    def set_max_neighbors(self, max_count: Sequence[int]) -> None:
        """Keep only the neighbour-list slots the data can fill (:func:`dpmodel.neighbor.slot_widths`)."""
        set_max_neighbors(self.train_state, max_count)
