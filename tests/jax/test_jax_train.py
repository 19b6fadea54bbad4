"""The training step: loss and gradient, Adam against dpmodel's formula, bitwise checkpoints, the trainer protocol."""

from dataclasses import replace

import jax
import numpy as np
import pytest

from backends.jax import INFO, train
from backends.jax.model import TRACES
from backends.jax.modules import x64
from dpmodel.training.adam import adam_update
from dpmodel.training.loss import energy_loss
from dpmodel.training.protocol import BackendTrainer, trainer_class
from jax_helpers import assert_close, build
from staging_check import assert_staged_step_is_bitwise

PREFS = {"e": 0.5, "f": 20.0, "v": 0.3}


def make_batch(model, system, seed=0):
    """Labels = the model's own predictions, perturbed, so that the loss is nonzero."""
    rng = np.random.default_rng(seed)
    pred = model.call(system.coord, system.atype, system.box)
    return {"coord": system.coord, "box": system.box, "atype": system.atype,
            "energy": pred["energy"] + rng.normal(size=pred["energy"].shape),
            "force": pred["force"] + 0.1 * rng.normal(size=pred["force"].shape),
            "virial": pred["virial"] + rng.normal(size=pred["virial"].shape),
            "find_energy": 1.0, "find_force": 1.0, "find_virial": 1.0}


@pytest.fixture(scope="module")
def setup():
    model, system, *_ = build("resnet_dt", "triclinic", natoms=10)
    model.fitting.nets.networks[1].layers[1].trainable = False
    return model, make_batch(model, system)


def test_loss_and_metrics_match_dpmodel(setup):
    model, batch = setup
    state = train.build(model.serialize(), seed=1)
    loss, grads, metrics = train.loss_and_grad(state, batch, PREFS)
    pred = model.call(batch["coord"], batch["atype"], batch["box"])
    expected_loss, expected_metrics = energy_loss(pred, batch, PREFS, batch["atype"].shape[1])
    assert_close(loss, expected_loss, 1e-10, "loss")
    assert set(metrics) == {"rmse", "rmse_e", "rmse_f", "rmse_v"}
    for key, value in expected_metrics.items():
        assert_close(metrics[key], value, 1e-10, key)
    assert jax.tree.structure(grads) == jax.tree.structure(state.trainable)
    assert_close(train.evaluate(state, batch, PREFS)[0], expected_loss, 1e-10, "evaluate")


def _at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def _perturbed(tree, path, delta):
    """A copy of ``tree`` with the first element of the array at ``path`` shifted by ``delta``."""
    tree = jax.tree.map(lambda a: a, tree, is_leaf=lambda x: x is None)  # fresh containers
    parent, array = _at(tree, path[:-1]), _at(tree, path)
    with x64():
        parent[path[-1]] = array.at[(0,) * array.ndim].add(delta)
    return tree


def test_gradient_matches_finite_differences(setup):
    """Central differences of the loss (step 1e-5) on a descriptor and a fitting parameter."""
    model, batch = setup
    state = train.build(model.serialize())
    _, grads, _ = train.loss_and_grad(state, batch, PREFS)
    step = 1e-5
    for path in (("descriptor", "embeddings", 1, 1, "w"), ("fitting", "nets", 0, 2, "b"), ("fitting", "nets", 1, 0, "w")):
        losses = [float(train.evaluate(replace(state, trainable=_perturbed(state.trainable, path, d)), batch,
                                       PREFS)[0]) for d in (step, -step)]
        fd = (losses[0] - losses[1]) / (2 * step)
        analytic = float(np.asarray(_at(grads, path)).reshape(-1)[0])
        assert abs(analytic) > 1e-4, (path, analytic)  # a gradient worth checking
        assert abs(fd - analytic) <= 1e-8 + 1e-6 * abs(analytic), (path, fd, analytic)  # O(h^2) + rounding


@pytest.mark.parametrize("case", ["resnet_dt", "float32"])
def test_adam_follows_the_dpmodel_formula(setup, case):
    model = setup[0] if case == "resnet_dt" else build(case)[0]
    state = train.build(model.serialize())
    rng = np.random.default_rng(3)
    grads_seq = [jax.tree.map(lambda p: rng.normal(size=p.shape).astype(p.dtype), state.trainable)
                 for _ in range(3)]
    lrs = [1e-3, 5e-4, 2e-3]
    expected = jax.tree.map(np.asarray, state.trainable)
    moments = jax.tree.map(np.zeros_like, expected), jax.tree.map(np.zeros_like, expected)
    for t, (grads, lr) in enumerate(zip(grads_seq, lrs), start=1):
        with x64():
            state = train.apply_update(state, jax.tree.map(np.asarray, grads), lr)
        triples = jax.tree.map(lambda p, g, m, v: adam_update(p, g, m, v, t, lr), expected, grads, *moments)
        expected = jax.tree.map(lambda x: x[0], triples, is_leaf=lambda x: isinstance(x, tuple))
        moments = (jax.tree.map(lambda x: x[1], triples, is_leaf=lambda x: isinstance(x, tuple)),
                   jax.tree.map(lambda x: x[2], triples, is_leaf=lambda x: isinstance(x, tuple)))
    assert state.step == 3
    tol = 1e-6 if case == "float32" else 1e-14
    for got, want in zip(jax.tree.leaves(state.trainable), jax.tree.leaves(expected)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(np.asarray(got), want, rtol=tol, atol=tol)


def test_fused_step_equals_loss_then_update_and_repeats_exactly(setup):
    """train_step (one compiled call) gives the parameters of loss_and_grad then apply_update, the
    same loss, and the same state bit for bit when repeated from the same start."""
    model, batch = setup
    state = train.build(model.serialize())
    loss0, grads, _ = train.loss_and_grad(state, batch, PREFS)
    expected = train.apply_update(state, grads, 1e-3, 5.0)
    fused, loss1, metrics = train.train_step(state, batch, PREFS, 1e-3, 5.0)
    np.testing.assert_allclose(float(loss1), float(loss0), rtol=1e-12)
    assert set(metrics) == {"rmse", "rmse_e", "rmse_f", "rmse_v"}
    assert fused.step == state.step + 1
    want, got = train.state_dict(expected), train.state_dict(fused)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-14, err_msg=key)
    again = train.state_dict(train.train_step(state, batch, PREFS, 1e-3, 5.0)[0])
    assert all(np.array_equal(again[k], got[k]) for k in got)


def test_frozen_layers_and_statistics_do_not_move(setup):
    model, batch = setup
    state = train.build(model.serialize())
    _, grads, _ = train.loss_and_grad(state, batch, PREFS)
    new = train.apply_update(state, grads, 1e-2)
    before, after = train.model_dict(state), train.model_dict(new)
    frozen = ["fitting", "nets", "networks", 1, "layers", 1, "@variables", "w"]
    for path in (frozen, ["descriptor", "@variables", "davg"], ["@variables", "out_bias"]):
        a, b = before, after
        for key in path:
            a, b = a[key], b[key]
        np.testing.assert_array_equal(a, b)
    moved = ["fitting", "nets", "networks", 1, "layers", 0, "@variables", "w"]
    a, b = before, after
    for key in moved:
        a, b = a[key], b[key]
    assert not np.array_equal(a, b)


def test_checkpoint_round_trip_is_bitwise(setup):
    model, batch = setup
    state = train.build(model.serialize())
    for lr in (1e-3, 1e-3):
        _, grads, _ = train.loss_and_grad(state, batch, PREFS)
        state = train.apply_update(state, grads, lr)
    arrays = train.state_dict(state)
    assert "opt/count" in arrays and all(isinstance(v, np.ndarray) for v in arrays.values())
    restored = train.load_state_dict(model.serialize(), arrays)
    assert restored.step == state.step == 2
    for s in (state, restored):
        _, grads, _ = train.loss_and_grad(s, batch, PREFS)
        s_next = train.apply_update(s, grads, 5e-4)
        if s is state:
            reference = train.state_dict(s_next)
    final = train.state_dict(s_next)
    assert reference.keys() == final.keys()
    assert all(np.array_equal(reference[k], final[k]) and reference[k].dtype == final[k].dtype for k in final)
    with pytest.raises(KeyError, match="lacks"):
        train.load_state_dict(model.serialize(), {k: v for k, v in arrays.items() if k != "opt/count"})


def test_backend_trainer_protocol_reduces_the_loss(setup):
    model, batch = setup
    cls = trainer_class(INFO)
    assert cls is train.BackendTrainer
    trainer = cls(model.serialize(), {"training": {"seed": 1, "gradient_max_norm": 5.0}})
    assert isinstance(trainer, BackendTrainer)
    pred = model.call(batch["coord"], batch["atype"], batch["box"])
    batch = {**batch, "energy": pred["energy"] + 0.5, "force": pred["force"] * 1.05}  # a learnable offset
    prefs = {"e": 1.0, "f": 1.0, "v": 0.0}
    before_traces = TRACES["train_step"]
    first = float(trainer.evaluate(batch, prefs)["rmse"])
    for _ in range(15):
        metrics = trainer.step(batch, 1e-3, prefs)
    assert set(metrics) == {"rmse", "rmse_e", "rmse_f", "rmse_v"}
    assert float(trainer.evaluate(batch, prefs)["rmse"]) < 0.5 * first
    assert TRACES["train_step"] - before_traces <= 1  # one compilation for every step of this batch shape
    state = trainer.state()
    other = cls(model.serialize(), {"training": {}})
    other.set_max_neighbors([1, 1])
    other.load_state(state)
    assert other._state.widths == (1, 1), "restoring a state keeps the neighbour-list widths"
    assert all(np.array_equal(other.state()[k], state[k]) for k in state)
    assert set(trainer.model_dict()) == set(model.serialize())


def test_batch_sorted_by_type_runs_each_fitting_net_on_its_own_atoms(setup):
    """Atoms sorted by type: each fitting net on its own static block (a compilation per composition), with the
    loss, gradients and metrics of the masked nets, and the dpmodel loss."""
    model, batch = setup
    order = np.argsort(batch["atype"][0], kind="stable")
    batch = {k: (v[:, order] if k in ("coord", "atype", "force") else v) for k, v in batch.items()}
    state = train.build(model.serialize(), seed=1)
    blocks = model.fitting.blocks_of(batch["atype"])
    assert blocks == tuple(int(n) for n in np.bincount(batch["atype"][0], minlength=2))
    loss, grads, metrics = train.loss_and_grad(state, batch, PREFS)
    with x64():
        inputs, labels, layout = train._batch_inputs(state, batch)
        assert layout == (blocks, None)
        masked = train._loss_and_grad_jit(state.structure, (None, None), state.trainable, state.frozen, inputs,
                                          labels, train._prefs(PREFS))
    assert_close(loss, masked[0], 1e-12, "loss")
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(masked[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    for key in metrics:
        assert_close(metrics[key], masked[2][key], 1e-12, key)
    pred = model.call(batch["coord"], batch["atype"], batch["box"])
    assert_close(loss, energy_loss(pred, batch, PREFS, batch["atype"].shape[1])[0], 1e-10, "dpmodel loss")


def test_neighbor_lists_cut_to_the_slots_the_data_fills(setup):
    """Once the most neighbours per type are known, batches run on neighbour lists cut to ``slot_widths``
    (the embedding nets skip padding slots, whose constant is added back), with the loss, gradients and
    metrics of the whole list; a batch that fills more slots keeps the whole list."""
    from dpmodel.neighbor import used_widths

    model, batch = setup
    state = train.build(model.serialize(), seed=1)
    sel = model.get_sel()
    with x64():
        used = used_widths(np.asarray(train._batch_inputs(state, batch)[0]["nlist"]), sel)
    assert sum(used) < sum(sel), "the test needs padding slots to drop"
    whole = train.loss_and_grad(state, batch, PREFS)
    cut_state = train.set_max_neighbors(state, used)
    assert cut_state.widths == tuple(used)
    with x64():
        assert train._batch_inputs(cut_state, batch)[2][1] == tuple(used)
        assert train._batch_inputs(replace(state, widths=tuple(u - 1 for u in used)), batch)[2][1] is None
    assert train.set_max_neighbors(state, [n + 5 for n in sel]).widths is None
    cut = train.loss_and_grad(cut_state, batch, PREFS)
    assert_close(cut[0], whole[0], 1e-12, "loss")
    for a, b in zip(jax.tree.leaves(cut[1]), jax.tree.leaves(whole[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    for key in whole[2]:
        assert_close(cut[2][key], whole[2][key], 1e-12, key)


def test_a_batch_staged_on_another_thread_trains_bitwise_like_the_batch(setup):
    """``stage`` (host work the trainer runs one step ahead on a background thread) changes nothing."""
    model, batch = setup
    trainers = [train.BackendTrainer(model.serialize(), {"training": {"seed": 1}}) for _ in range(2)]
    assert_staged_step_is_bitwise(*trainers, batch, PREFS, train.StagedBatch)
