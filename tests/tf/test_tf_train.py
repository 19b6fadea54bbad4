"""The TensorFlow training step: loss against dpmodel, gradients against finite differences, Adam."""

from __future__ import annotations

import numpy as np
import pytest

from dpmodel.model import EnergyModel as DPModel
from dpmodel.registry import by_name
from dpmodel.training.adam import adam_update
from dpmodel.training.loss import energy_loss
from dpmodel.training.protocol import BackendTrainer as Protocol
from dpmodel.training.protocol import trainer_class
from staging_check import assert_staged_step_is_bitwise
from tf_helpers import model_dict, system

from backends.tf import train

PREFS = {"e": 0.5, "f": 2.0, "v": 0.1}


def batch(seed: int, natoms: int = 10, kind: str = "triclinic") -> dict:
    sys_ = system(kind, natoms=natoms, seed=seed)
    rng = np.random.default_rng(seed)
    nf, nat = sys_.atype.shape
    return {"coord": sys_.coord, "box": sys_.box, "atype": sys_.atype,
            "energy": rng.normal(size=(nf, 1)), "force": rng.normal(size=(nf, nat, 3)),
            "virial": rng.normal(size=(nf, 9)), "find_energy": 1.0, "find_force": 1.0, "find_virial": 1.0}


def _plain_inputs(state, b: dict) -> list:
    """Inputs of the functions under plain names (all of ``sel``, no type blocks) with PREFS."""
    staged = train.stage(state, b, compiled_layout=False)
    return [*staged.inputs, np.array([PREFS[k] for k in "efv"]), staged.natoms]


@pytest.fixture(scope="module")
def state():
    return train.build(model_dict("one_side"))


def test_loss_matches_dpmodel(state):
    data = train.serialize(state)
    b = batch(1)
    out = DPModel.deserialize(data).call(b["coord"], b["atype"], b["box"])
    loss, metrics = energy_loss(out, b, PREFS, b["atype"].shape[1])
    tf_loss, tf_metrics, _ = train.loss_and_grad(state, b, PREFS)
    np.testing.assert_allclose(float(tf_loss), loss, rtol=1e-10)
    for name, value in metrics.items():
        np.testing.assert_allclose(float(tf_metrics[name]), value, rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(float(train.evaluate(state, b, PREFS)["rmse"]), metrics["rmse"], rtol=1e-10)


def test_xla_step_equals_the_graph_step():
    """Training steps run under XLA (backends.tf.xla) from the first; the same loss and gradients as the graph."""
    state = train.build(model_dict("one_side"))
    inputs = _plain_inputs(state, batch(5))
    loss1, metrics1, grads1 = state.functions["loss"](*inputs)
    loss0, metrics0, grads0 = state.functions["loss"].function(*inputs)
    assert state.functions["loss"].compiled_calls == 1
    np.testing.assert_allclose(float(loss1), float(loss0), rtol=1e-12)
    for name in metrics0:
        np.testing.assert_allclose(float(metrics1[name]), float(metrics0[name]), rtol=1e-12, err_msg=name)
    for g1, g0 in zip(grads1, grads0):
        np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-10, atol=1e-12)


def test_gradient_is_loss_derivative(state):
    b = batch(2)
    _, _, grads = train.loss_and_grad(state, b, PREFS)
    rng = np.random.default_rng(3)
    directions = [rng.normal(size=p.shape) for p in state.params]
    saved = [p.numpy() for p in state.params]
    step = 1e-5

    def loss_at(scale: float) -> float:
        for p, s, d in zip(state.params, saved, directions):
            p.assign(s + scale * d)
        return float(train.loss_and_grad(state, b, PREFS)[0])

    fd = (loss_at(step) - loss_at(-step)) / (2 * step)
    for p, s in zip(state.params, saved):
        p.assign(s)
    analytic = sum(float(np.sum(g.numpy() * d)) for g, d in zip(grads, directions))
    np.testing.assert_allclose(analytic, fd, rtol=1e-6)


def test_adam_update_and_exact_restart(state):
    snapshot = train.state_dict(state)
    _, _, grads = train.loss_and_grad(state, batch(4), PREFS)
    t = int(snapshot["step"]) + 1
    expected = [adam_update(snapshot[f"param/{n}"], g.numpy(), snapshot[f"adam_m/{n}"], snapshot[f"adam_v/{n}"], t, 1e-3)[0]
                for n, g in zip(state.names, grads)]
    train.apply_update(state, grads, 1e-3)
    for name, p, e in zip(state.names, state.params, expected):
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-13, atol=1e-15, err_msg=name)
    after = train.state_dict(state)
    train.load_state_dict(state, snapshot)
    _, _, grads = train.loss_and_grad(state, batch(4), PREFS)
    train.apply_update(state, grads, 1e-3)
    for key, value in train.state_dict(state).items():
        np.testing.assert_array_equal(value, after[key], err_msg=key)


def test_fused_step_equals_loss_then_update_and_restarts_exactly():
    """train_step (one compiled call) updates the parameters as loss_and_grad then apply_update, and
    repeats itself bit for bit from a restored state."""
    state = train.build(model_dict("one_side"), max_norm=5.0)
    snapshot = train.state_dict(state)
    b = batch(6)
    loss0, _, grads = train.loss_and_grad(state, b, PREFS)
    train.apply_update(state, grads, 1e-3)
    expected = train.state_dict(state)
    train.load_state_dict(state, snapshot)
    loss1, metrics = train.train_step(state, b, PREFS, 1e-3)
    np.testing.assert_allclose(float(loss1), float(loss0), rtol=1e-12)
    assert set(metrics) == {"rmse", "rmse_e", "rmse_f", "rmse_v"}
    after = train.state_dict(state)
    assert int(after["step"]) == int(snapshot["step"]) + 1
    for key, value in expected.items():
        np.testing.assert_allclose(after[key], value, rtol=1e-10, atol=1e-14, err_msg=key)
    train.load_state_dict(state, snapshot)
    train.train_step(state, b, PREFS, 1e-3)
    for key, value in train.state_dict(state).items():
        np.testing.assert_array_equal(value, after[key], err_msg=key)


def test_one_trace_over_systems_of_any_size(state):
    for seed, (natoms, kind) in enumerate([(10, "triclinic"), (7, "cluster"), (5, "small"), (12, "triclinic")]):
        _, _, grads = train.loss_and_grad(state, batch(seed, natoms, kind), PREFS)
        train.apply_update(state, grads, 1e-3)
    assert state.trace_counts["loss"] == 1 and state.trace_counts["update"] == 1


def test_backend_trainer_learns_a_type_embedding_model():
    kind = "type_embedding"
    cls = trainer_class(by_name("tf"))
    config = {"loss": {"start_pref_e": 1.0, "limit_pref_e": 1.0, "start_pref_f": 1.0, "limit_pref_f": 1.0},
              "training": {"gradient_max_norm": 10.0}}
    trainer = cls(model_dict(kind), config)
    assert isinstance(trainer, Protocol)
    b = batch(5)
    history = [float(trainer.step(b, 1e-3, PREFS)["rmse"]) for _ in range(8)]
    assert history[-1] < history[0]
    metrics = trainer.step(b, 1e-3, PREFS)
    assert float(metrics["rmse_v"]) == 0.0  # virial term inactive in this loss section
    names = trainer.train_state.names
    assert any(n.startswith("type_embedding") for n in names)
    data = trainer.model_dict()
    before = model_dict(kind)["type_embedding"]["embedding"]["layers"][0]["@variables"]["w"]
    assert not np.array_equal(data["type_embedding"]["embedding"]["layers"][0]["@variables"]["w"], before)
    assert trainer.train_state.trace_counts == {"loss": 1, "metrics": 0, "update": 1}


def test_initial_model_of_dp_train_carries_the_type_embedding():
    from dpmodel.errors import UnsupportedOptionError
    from dpmodel.serialization import trees_equal
    from dpmodel.training.init import build_model, type_embedding_dict

    from backends.tf.modules import TypeEmbedNet

    section = {"type_map": ["O", "H"], "atom_exclude_types": [], "pair_exclude_types": [],
               "descriptor": {"type": "se_e2_r", "sel": [4, 4], "rcut": 4.0, "rcut_smth": 0.5, "neuron": [4, 8],
                              "type_one_side": False},
               "fitting_net": {"type": "ener", "neuron": [8]}, "type_embedding": {"neuron": [2, 4], "seed": 3}}
    model = build_model(section, "tf")
    assert model.fitting.mixed_types and model.fitting.dim_descrpt == 8 + 4
    tebd = type_embedding_dict(section["type_embedding"], section["type_map"])
    assert trees_equal(TypeEmbedNet.deserialize(tebd).serialize(), tebd) == []
    with pytest.raises(UnsupportedOptionError, match="type_embedding"):
        build_model({**section, "descriptor": {**section["descriptor"], "type_one_side": True}}, "pt")


def test_type_blocks_of_sorted_frames():
    from dpmodel.fitting import type_blocks

    assert type_blocks(np.array([[0, 0, 1, 1, 1]] * 2), 2) == (2, 3)
    assert type_blocks(np.array([[0, 0, 0]]), 3) == (3, 0, 0)
    assert type_blocks(np.array([[0, 1, 0]]), 2) is None  # not sorted
    assert type_blocks(np.array([[0, 1], [1, 1]]), 2) is None  # frames differ
    assert type_blocks(np.array([[-1, 0, 1]]), 2) is None  # a virtual atom


def test_batch_sorted_by_type_runs_each_fitting_net_on_its_own_atoms():
    """A batch whose atoms are sorted by type gets its own compiled functions (fitting nets on static blocks
    of atoms), with the loss, metrics and gradients of the masked nets."""
    state = train.build(model_dict("one_side"))
    b = batch(7)
    order = np.argsort(b["atype"][0], kind="stable")
    b = {k: (v[:, order] if k in ("coord", "atype", "force") else v) for k, v in b.items()}
    blocks = tuple(int(n) for n in np.bincount(b["atype"][0], minlength=2))
    loss, metrics, grads = train.loss_and_grad(state, b, PREFS)
    assert ("loss", blocks, None) in state.functions and state.functions[("loss", blocks, None)].compiled_calls == 1
    masked = state.functions["loss"](*_plain_inputs(state, b))
    np.testing.assert_allclose(float(loss), float(masked[0]), rtol=1e-12)
    for name in metrics:
        np.testing.assert_allclose(float(metrics[name]), float(masked[1][name]), rtol=1e-12, err_msg=name)
    for g1, g0 in zip(grads, masked[2]):
        np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(train.evaluate(state, b, PREFS)["rmse"]), float(metrics["rmse"]), rtol=1e-12)


@pytest.mark.parametrize("kind", ["one_side", "two_side", "type_embedding"])
def test_neighbor_lists_cut_to_the_slots_the_data_fills(kind):
    """Once the most neighbours per type are known, batches run on neighbour lists cut to
    ``slot_widths`` (the embedding nets skip padding slots, whose constant is added back), with
    the loss, metrics and gradients of the whole list; a batch that fills more slots keeps the
    whole list."""
    state = train.build(model_dict(kind))
    b = batch(7)  # at most 6 and 3 neighbours of types 0 and 1 (of sel 20 and 20)
    whole = train.loss_and_grad(state, b, PREFS)
    train.set_max_neighbors(state, [6, 3])
    assert state.widths == (6, 3)

    def check(result):
        np.testing.assert_allclose(float(result[0]), float(whole[0]), rtol=1e-12)
        for name in whole[1]:
            np.testing.assert_allclose(float(result[1][name]), float(whole[1][name]), rtol=1e-12, err_msg=name)
        for g1, g0 in zip(result[2], whole[2]):
            np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-10, atol=1e-12)

    check(train.loss_and_grad(state, b, PREFS))
    assert state.functions[("loss", None, (6, 3))].compiled_calls == 1
    state.widths = (5, 5)  # fewer slots than the batch fills: the whole list's function
    check(train.loss_and_grad(state, b, PREFS))
    assert ("loss", None, (5, 5)) not in state.functions
    train.set_max_neighbors(state, [30, 20])  # no slot to drop
    assert state.widths is None


def test_a_batch_staged_on_another_thread_trains_bitwise_like_the_batch():
    """``stage`` (host work the trainer runs one step ahead on a background thread) changes nothing."""
    trainers = [train.BackendTrainer(model_dict("one_side"), {}) for _ in range(2)]
    assert_staged_step_is_bitwise(*trainers, batch(8), PREFS, train.StagedBatch)
