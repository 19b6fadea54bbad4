r"""Training step of the TensorFlow backend, for the backend-neutral trainer.

The trainer owns data, schedule and bookkeeping; this module owns the parameters, the
loss gradient and the optimizer::

    state = build(model_dict)
    loss, metrics, grads = loss_and_grad(state, batch, {"e": pe, "f": pf, "v": pv})
    apply_update(state, grads, lr)
    arrays = state_dict(state); load_state_dict(state, arrays)   # checkpoints
    model_dict = serialize(state)                                # freezing

Loss (SPEC 8.3), with :math:`N` atoms per frame and each prefactor multiplied by the
batch's ``find_<label>`` flag when present:

.. math:: L = p_e \frac1N \overline{(E-\hat E)^2} + p_f \overline{(F-\hat F)^2}
          + p_v \frac1N \overline{(\Xi-\hat\Xi)^2}

Adam (:func:`apply_update`), with :math:`t` the step after increment,
:math:`\beta_1 = 0.9, \beta_2 = 0.999, \epsilon = 10^{-8}`:
:math:`m \leftarrow \beta_1 m + (1-\beta_1) g`, :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`,
:math:`p \leftarrow p - \mathrm{lr}\,\hat m / (\sqrt{\hat v} + \epsilon)` with
:math:`\hat m = m/(1-\beta_1^t)`, :math:`\hat v = v/(1-\beta_2^t)`.
Both functions are ``tf.function``s with fixed signatures: one trace each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from dpmodel.model_factory import model_from_dict

from backends.tf.model import INPUT_NAMES, energy_and_forces, prepare_inputs, signature_of
from backends.tf.modules import EnergyModel

__all__ = ["TrainState", "apply_update", "build", "load_state_dict", "loss_and_grad", "serialize", "state_dict"]

BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8
LABELS = (("e", "energy"), ("f", "force"), ("v", "virial"))


@dataclass
class TrainState:
    """Parameters, Adam moments and the compiled step functions of one model.

    Attributes
    ----------
    model : the TensorFlow energy model being trained
    names : names of the trainable parameters, in ``params`` order
    params, adam_m, adam_v : trainable variables and their first and second moments
    step : number of updates applied (int64 variable)
    trace_counts : traces of the loss and update functions (1 each after any number of steps)
    """

    model: EnergyModel
    names: list[str]
    params: list[tf.Variable]
    adam_m: list[tf.Variable]
    adam_v: list[tf.Variable]
    step: tf.Variable
    trace_counts: dict[str, int] = field(default_factory=lambda: {"loss": 0, "update": 0})
    loss_fn: Any = None
    update_fn: Any = None


def build(model_dict: dict) -> TrainState:
    """A training state from a serialized model dict (SPEC 4.5, ``type_embedding`` allowed)."""
    model = model_from_dict(model_dict, EnergyModel)
    named = [(n, v) for n, v in model.named_variables() if v.trainable]
    params = [v for _, v in named]
    state = TrainState(
        model=model, names=[n for n, _ in named], params=params,
        adam_m=[tf.Variable(tf.zeros_like(p), trainable=False) for p in params],
        adam_v=[tf.Variable(tf.zeros_like(p), trainable=False) for p in params],
        step=tf.Variable(0, dtype=tf.int64, trainable=False),
    )
    state.loss_fn = _loss_function(state)
    state.update_fn = _update_function(state)
    return state


def _loss_function(state: TrainState):
    model = state.model
    labels = [tf.TensorSpec([None, 1], tf.float64, name="energy"), tf.TensorSpec([None, None, 3], tf.float64, name="force"),
              tf.TensorSpec([None, 9], tf.float64, name="virial"), tf.TensorSpec([3], tf.float64, name="prefactors"),
              tf.TensorSpec([], tf.float64, name="natoms")]

    def loss_and_grad_graph(coord_ext, atype_ext, nlist, mapping, fparam, aparam, energy, force, virial, pref, natoms):
        state.trace_counts["loss"] += 1
        with tf.GradientTape() as tape:
            out = energy_and_forces(model, coord_ext, atype_ext, nlist, mapping, fparam, aparam)
            l2 = [tf.reduce_mean(tf.square(out["energy"] - energy)), tf.reduce_mean(tf.square(out["force"] - force)),
                  tf.reduce_mean(tf.square(out["virial"] - virial))]
            loss = pref[0] * l2[0] / natoms + pref[1] * l2[1] + pref[2] * l2[2] / natoms
        grads = tape.gradient(loss, state.params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        metrics = {"rmse_e": tf.sqrt(l2[0]) / natoms, "rmse_f": tf.sqrt(l2[1]), "rmse_v": tf.sqrt(l2[2]) / natoms,
                   "rmse": tf.sqrt(loss)}
        return loss, metrics, grads

    return tf.function(loss_and_grad_graph, input_signature=[*signature_of(model), *labels], autograph=False)


def _update_function(state: TrainState):
    specs = [tf.TensorSpec(p.shape, p.dtype) for p in state.params]

    def adam(grads, lr):
        state.trace_counts["update"] += 1
        state.step.assign_add(1)
        t = tf.cast(state.step, tf.float64)
        for p, g, m, v in zip(state.params, grads, state.adam_m, state.adam_v):
            dtype = p.dtype
            m.assign(BETA1 * m + (1.0 - BETA1) * g)
            v.assign(BETA2 * v + (1.0 - BETA2) * tf.square(g))
            m_hat = m / tf.cast(1.0 - BETA1**t, dtype)
            v_hat = v / tf.cast(1.0 - BETA2**t, dtype)
            p.assign_sub(tf.cast(lr, dtype) * m_hat / (tf.sqrt(v_hat) + EPSILON))
        return state.step

    return tf.function(adam, input_signature=[specs, tf.TensorSpec([], tf.float64, name="lr")], autograph=False)


def loss_and_grad(state: TrainState, batch: Mapping[str, Any],
                  prefactors: Mapping[str, float]) -> tuple[float, dict[str, float], list[tf.Tensor]]:
    """Loss, metrics (``rmse_e``, ``rmse_f``, ``rmse_v``, ``rmse``) and gradients of one batch.

    Parameters
    ----------
    batch : a :meth:`dpmodel.data.system.DeepmdSystem.frames` dict: ``coord`` (nf, nat, 3) Å,
        ``box`` (nf, 9) or None, ``atype`` (nf, nat), ``energy`` (nf, 1) eV, ``force`` (nf, nat, 3)
        eV/Å, ``virial`` (nf, 9) eV, optional ``find_energy``/``find_force``/``find_virial``,
        ``fparam``, ``aparam``
    prefactors : ``{"e": p_e, "f": p_f, "v": p_v}`` (missing keys are 0)
    """
    model = state.model
    fitting = model.fitting
    atype = np.asarray(batch["atype"])
    nf, nat = atype.shape
    inputs = prepare_inputs(batch["coord"], batch.get("box"), atype, model.get_rcut(), model.get_sel(),
                            batch.get("fparam"), batch.get("aparam"), fitting.numb_fparam, fitting.numb_aparam,
                            fitting.default_fparam)
    pref = np.array([float(prefactors.get(k, 0.0)) * float(batch.get(f"find_{label}", 1.0)) for k, label in LABELS])
    labels = [np.asarray(batch["energy"], np.float64).reshape(nf, 1),
              np.asarray(batch["force"], np.float64).reshape(nf, nat, 3),
              np.asarray(batch["virial"], np.float64).reshape(nf, 9), pref, np.float64(nat)]
    loss, metrics, grads = state.loss_fn(*(inputs[n] for n in INPUT_NAMES), *labels)
    return float(loss), {k: float(v) for k, v in metrics.items()}, list(grads)


def apply_update(state: TrainState, grads: list[tf.Tensor], lr: float) -> None:
    """One Adam step with learning rate ``lr`` (module docstring)."""
    state.update_fn(list(grads), tf.constant(lr, tf.float64))


def state_dict(state: TrainState) -> dict[str, np.ndarray]:
    """Checkpoint arrays: ``step``, ``param/<name>``, ``adam_m/<name>``, ``adam_v/<name>``."""
    out = {"step": np.asarray(state.step.numpy())}
    for name, p, m, v in zip(state.names, state.params, state.adam_m, state.adam_v):
        out[f"param/{name}"], out[f"adam_m/{name}"], out[f"adam_v/{name}"] = p.numpy(), m.numpy(), v.numpy()
    return out


def load_state_dict(state: TrainState, arrays: Mapping[str, np.ndarray]) -> None:
    """Restore a :func:`state_dict` into a state built from the same model dict."""
    missing = [k for k in state_dict(state) if k not in arrays]
    if missing:
        raise KeyError(f"checkpoint lacks {missing[:3]}{'...' if len(missing) > 3 else ''}")
    state.step.assign(int(np.asarray(arrays["step"])))
    for name, p, m, v in zip(state.names, state.params, state.adam_m, state.adam_v):
        p.assign(arrays[f"param/{name}"])
        m.assign(arrays[f"adam_m/{name}"])
        v.assign(arrays[f"adam_v/{name}"])


def serialize(state: TrainState) -> dict:
    """The current model dict (what ``dp freeze`` writes)."""
    return state.model.serialize()
