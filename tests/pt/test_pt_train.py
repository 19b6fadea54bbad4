"""The PyTorch training step: loss (SPEC 8.3), its gradient, Adam, checkpoints, threads, DDP."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backends.pt import INFO, train
from dpmodel.training.protocol import BackendTrainer, trainer_class
from pt_helpers import build

PREFS = {"e": 0.7, "f": 3.0, "v": 0.2}


def make_batch(case="base", kind="triclinic", seed=0):
    model, system, fparam, aparam = build(case, kind, natoms=10, seed=seed)
    rng = np.random.default_rng(seed + 11)
    nf, nat = system.atype.shape
    batch = {"coord": system.coord, "box": system.box, "atype": system.atype,
             "energy": rng.normal(size=(nf, 1)) - 20.0, "force": rng.normal(size=(nf, nat, 3)),
             "virial": rng.normal(size=(nf, 9)), "find_energy": 1.0, "find_force": 1.0, "find_virial": 1.0,
             "fparam": fparam, "aparam": aparam}
    return model, batch


def reference_loss(model, batch, prefs):
    """SPEC 8.3 in NumPy on dpmodel's analytic predictions."""
    ref = model.call(batch["coord"], batch["atype"], batch["box"], batch["fparam"], batch["aparam"])
    natoms = batch["atype"].shape[1]
    l2 = {"e": np.mean((ref["energy"] - batch["energy"]) ** 2), "f": np.mean((ref["force"] - batch["force"]) ** 2),
          "v": np.mean((ref["virial"] - batch["virial"]) ** 2)}
    loss = prefs["e"] / natoms * l2["e"] + prefs["f"] * l2["f"] + prefs["v"] / natoms * l2["v"]
    return loss, {"rmse_e": np.sqrt(l2["e"]) / natoms, "rmse_f": np.sqrt(l2["f"]), "rmse_v": np.sqrt(l2["v"]) / natoms}


@pytest.mark.parametrize("case", ["base", "fparam_aparam", "float32"])
def test_loss_matches_formula(case):
    model, batch = make_batch(case)
    state = train.build(model.serialize(), device="cpu")
    metrics = train.loss_and_grad(state, batch, PREFS)
    loss, rmse = reference_loss(model, batch, PREFS)
    tol = 1e-10 if case != "float32" else 1e-5
    np.testing.assert_allclose(metrics["loss"], loss, rtol=tol)
    np.testing.assert_allclose(metrics["rmse"], np.sqrt(loss), rtol=tol)
    for key, value in rmse.items():
        np.testing.assert_allclose(metrics[key], value, rtol=tol)
    assert all(p.grad is not None for p in state.parameters().values())


def test_gradient_by_finite_differences():
    model, batch = make_batch()
    state = train.build(model.serialize(), device="cpu")
    train.loss_and_grad(state, batch, PREFS)
    params = state.parameters()
    for name, index in [("descriptor.embeddings.networks.1.layers.0.w", (0, 2)),
                        ("fitting.nets.networks.0.layers.1.idt", (3,)), ("fitting.nets.networks.1.layers.2.b", (0,))]:
        param = params[name]
        grad = float(param.grad[index])
        values = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                param[index] += sign * 1e-6
            values.append(train.evaluate(state, batch, PREFS)["loss"])
            with torch.no_grad():
                param[index] -= sign * 1e-6
        np.testing.assert_allclose(grad, (values[0] - values[1]) / 2e-6, rtol=1e-6, atol=1e-9, err_msg=name)


def test_adam_update_formula():
    model, batch = make_batch()
    state = train.build(model.serialize(), device="cpu")
    lr, m, v = 2e-3, {}, {}
    for t in (1, 2):
        train.loss_and_grad(state, batch, PREFS)
        before = {k: p.detach().numpy().copy() for k, p in state.parameters().items()}
        grads = {k: p.grad.numpy().copy() for k, p in state.parameters().items()}
        train.apply_update(state, lr)
        for name, param in state.parameters().items():
            g = grads[name]
            m[name] = 0.9 * m.get(name, 0.0) + 0.1 * g
            v[name] = 0.999 * v.get(name, 0.0) + 0.001 * g * g
            expected = before[name] - lr * (m[name] / (1 - 0.9**t)) / (np.sqrt(v[name] / (1 - 0.999**t)) + 1e-8)
            np.testing.assert_allclose(param.detach().numpy(), expected, rtol=1e-14, atol=1e-15, err_msg=name)
    assert state.step == 2


def test_adam_in_place_is_dpmodel_adam_update_bit_for_bit():
    from backends.pt.flat_adam import adam_in_place
    from dpmodel.training.adam import adam_update

    rng = np.random.default_rng(4)
    shapes = [(3, 5), (7,), (1, 1), (4, 2)]
    params = [torch.from_numpy(rng.normal(size=s)) for s in shapes]
    m = [torch.from_numpy(rng.normal(size=s)) for s in shapes]
    v = [torch.from_numpy(rng.random(size=s)) for s in shapes]
    grads = [torch.from_numpy(rng.normal(size=s)) for s in shapes]
    expected = [adam_update(p, g, mm, vv, 3, 1e-3) for p, g, mm, vv in zip(params, grads, m, v)]
    flat = [torch.cat([t.reshape(-1) for t in tensors]) for tensors in (params, grads, m, v)]
    adam_in_place(*flat, 3, 1e-3, 0.9, 0.999, 1e-8)
    for new, reference in zip((flat[0], flat[2], flat[3]), zip(*expected)):
        assert torch.equal(new, torch.cat([t.reshape(-1) for t in reference]))


def test_parameters_share_flat_buffers():
    """Every trainable parameter and its gradient are views of its group's buffers, after
    steps and a checkpoint restore; so the flat update reaches the module."""
    model, batch = make_batch()
    state = train.build(model.serialize(), device="cpu")
    for _ in range(2):
        train.loss_and_grad(state, batch, PREFS)
        train.apply_update(state, 1e-3)
    train.load_state_dict(state, train.state_dict(state))
    state.model.zero_grad()  # sets every .grad to None: the next step reattaches the views
    train.loss_and_grad(state, batch, PREFS)
    params = state.parameters()
    assert sorted(params) == sorted(name for group in state.groups for name in group.shapes)
    for group in state.groups:
        for buffer, attribute in ((group.values, "data"), (group.grads, "grad")):
            for name, view in group.views(buffer).items():
                assert getattr(params[name], attribute).data_ptr() == view.data_ptr(), (name, attribute)
    # the module's own parameters are the same objects: its forward sees the updated values
    named = dict(state.model.named_parameters())
    assert all(named[name] is param for name, param in params.items())


def test_checkpoint_continues_bitwise():
    model, batch = make_batch()
    trainer = trainer_class(INFO)(model.serialize(), {"training": {}}, device="cpu")
    assert isinstance(trainer, BackendTrainer)
    for _ in range(2):
        trainer.step(batch, 1e-3, PREFS)
    saved = trainer.state()
    restored = train.BackendTrainer(model.serialize(), {"training": {}}, device="cpu")
    restored.load_state(saved)
    curves = [[t.step(batch, 1e-3, PREFS)["loss"] for _ in range(2)] for t in (trainer, restored)]
    assert curves[0] == curves[1]
    assert all(np.array_equal(a, b) for a, b in zip(trainer.state().values(), restored.state().values()))
    assert trainer.model_dict()["fitting"]["nets"]["networks"][0]["layers"][0]["@variables"]["w"].dtype == np.float64
    assert train.evaluate(trainer.train_state, batch, PREFS)["loss"] == trainer.evaluate(batch, PREFS)["loss"]


def test_gradient_clipping():
    model, batch = make_batch()
    state = train.build(model.serialize(), {"gradient_max_norm": 1e-3}, "cpu")
    train.loss_and_grad(state, batch, PREFS)
    grads = {k: p.grad.clone() for k, p in state.parameters().items()}
    norm = float(torch.sqrt(sum((g * g).sum() for g in grads.values())))
    assert norm > 1e-3
    before = {k: p.detach().clone() for k, p in state.parameters().items()}
    train.apply_update(state, 1.0)
    # first Adam step: delta = -lr * g/(|g| + eps) elementwise with g scaled by c/(|g|_2 + 1e-6)
    scale = 1e-3 / (norm + 1e-6)
    for name, param in state.parameters().items():
        g = grads[name] * scale
        torch.testing.assert_close(param - before[name], -g / (g.abs() + 1e-8), rtol=1e-10, atol=1e-12)


def test_thread_environment():
    env = {**os.environ, "DP_INTRA_OP_PARALLELISM_THREADS": "1", "DP_INTER_OP_PARALLELISM_THREADS": "1",
           "OMP_NUM_THREADS": "2"}
    code = "import torch, backends.pt.modules; print(torch.get_num_threads(), torch.get_num_interop_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]


DDP_SCRIPT = """
import glob, json, os, sys
import numpy as np
sys.path[:0] = [{tests!r}, {tests_pt!r}]
from test_pt_train import PREFS, make_batch
from backends.pt import train
model, batch = make_batch(seed=3)
# 3 frames: ranks get 2 and 1 (uneven split)
batch = {{k: (np.concatenate([v, v[:1] * (1 if k == "atype" else 1.01)]) if isinstance(v, np.ndarray) else v)
          for k, v in batch.items()}}
data = model.serialize()
if os.environ.get("RANK", "0") != "0":  # rank 0's parameters must reach every rank
    net = data["fitting"]["nets"]["networks"][0]["layers"][0]
    net["@variables"]["w"] = net["@variables"]["w"] + 0.1
state = train.build(data)  # DEVICE=cpu: gloo on CPU
curve = []
for step in range(3):
    curve.append(train.loss_and_grad(state, batch, PREFS))
    train.apply_update(state, 1e-3)
curve.append(train.loss_and_grad(state, {{k: (v[:1] if isinstance(v, np.ndarray) else v) for k, v in batch.items()}}, PREFS))
rank, size = train.world()
train.close(state)
threads = sorted(open(f).read().strip() for f in glob.glob("/proc/self/task/*/comm"))
# the group's worker threads, which hold the collectives' tensors, were joined
assert "pt_gloo_runloop" not in threads, threads
if rank == 0:
    json.dump({{"size": size, "curve": curve}}, open({out!r}.format(size), "w"))
"""


@pytest.mark.slow
def test_ddp_matches_one_process(tmp_path):
    """torchrun with 2 gloo ranks gives the loss curve of one process with the same global batch."""
    tests = Path(__file__).resolve().parents[1]
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(tests), tests_pt=str(tests / "pt"), out=str(tmp_path / "curve{}.json")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DEVICE": "cpu"}
    single = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    multi = subprocess.run(torchrun, env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    import json

    one = json.loads((tmp_path / "curve1.json").read_text())["curve"]
    two = json.loads((tmp_path / "curve2.json").read_text())["curve"]
    assert len(one) == len(two) == 4  # 3 steps, then a one-frame batch (every rank takes it whole)
    for a, b in zip(one, two):
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-12, err_msg=key)
