"""Loss prefactors, the energy loss formula (SPEC 8.3), display rules and the Adam formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dpmodel.errors import ConfigError
from dpmodel.training.adam import adam_update, clip_scale
from dpmodel.training.loss import active_terms, batch_labels, check_loss, displayed, energy_loss, prefactors, weighted_mean

LOSS = {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1.0, "start_pref_f": 1000.0, "limit_pref_f": 1.0,
        "start_pref_v": 0.0, "limit_pref_v": 0.0}


def test_prefactors_interpolate_with_lr() -> None:
    assert active_terms(LOSS) == ("e", "f")
    assert prefactors(LOSS, 1e-3, 1e-3) == pytest.approx({"e": 0.02, "f": 1000.0, "v": 0.0}, rel=1e-14)
    half = prefactors(LOSS, 5e-4, 1e-3)
    assert half["e"] == pytest.approx(0.51) and half["f"] == pytest.approx(500.5) and half["v"] == 0.0


@pytest.mark.parametrize("key, value", [("start_pref_ae", 1.0), ("use_huber", True), ("relative_f", 0.1)])
def test_unsupported_terms_are_refused(key, value) -> None:
    with pytest.raises(ConfigError, match=f"loss/{key}"):
        check_loss({**LOSS, key: value})


def test_energy_loss_matches_hand_formula() -> None:
    rng = np.random.default_rng(0)
    nf, nat = 3, 5
    pred = {"energy": rng.normal(size=(nf, 1)), "force": rng.normal(size=(nf, nat, 3)),
            "virial": rng.normal(size=(nf, 9))}
    label = {"energy": rng.normal(size=(nf, 1)), "force": rng.normal(size=(nf, nat, 3)),
             "virial": rng.normal(size=(nf, 9)), "find_energy": 1.0, "find_force": 1.0, "find_virial": 0.0}
    prefs = {"e": 0.5, "f": 2.0, "v": 3.0}
    loss, metrics = energy_loss(pred, label, prefs, nat)
    l2 = {k: np.mean((pred[k] - label[k]) ** 2) for k in ("energy", "force", "virial")}
    expected = 0.5 * l2["energy"] / nat + 2.0 * l2["force"]  # virial switched off by find_virial = 0
    assert float(loss) == pytest.approx(expected, rel=1e-14)
    assert float(metrics["rmse"]) == pytest.approx(math.sqrt(expected), rel=1e-14)
    assert float(metrics["rmse_e"]) == pytest.approx(math.sqrt(l2["energy"]) / nat, rel=1e-14)
    assert float(metrics["rmse_f"]) == pytest.approx(math.sqrt(l2["force"]), rel=1e-14)
    shown = displayed(metrics, label, ("e", "f", "v"))
    assert math.isnan(shown["rmse_v"]) and shown["rmse_f"] == float(metrics["rmse_f"])
    assert set(displayed(metrics, label, ("e", "f"))) == {"rmse", "rmse_e", "rmse_f"}


def test_validation_mean_is_atom_weighted() -> None:
    assert weighted_mean([{"rmse": 1.0}, {"rmse": 4.0}], [1, 3]) == {"rmse": 3.25}


def test_adam_formula_and_clipping() -> None:
    param, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    grad = np.array([0.5, -0.25])
    new, m, v = adam_update(param, grad, m, v, 1, 0.1)
    # first step of Adam moves every parameter by lr * sign(grad) (up to eps)
    np.testing.assert_allclose(new, param - 0.1 * np.sign(grad), rtol=1e-7)
    assert float(clip_scale([np.array([3.0]), np.array([4.0])], 1.0)) == pytest.approx(0.2, rel=1e-6)
    assert clip_scale([grad], None) == 1.0


def test_adam_equals_torch_adam() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    start = rng.normal(size=4)
    weight = torch.tensor(start.copy(), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([weight], lr=1e-2)
    param, m, v = start.copy(), np.zeros(4), np.zeros(4)
    for t in range(1, 6):
        grad = rng.normal(size=4)
        weight.grad = torch.tensor(grad)
        optimizer.step()
        param, m, v = adam_update(param, grad, m, v, t, 1e-2)
    np.testing.assert_allclose(weight.detach().numpy(), param, rtol=1e-14, atol=1e-15)


def test_batch_labels_take_the_loss_shapes_and_flag_missing_labels() -> None:
    """Labels reshaped to (nf, 1), (nf, nat, 3), (nf, 9); an absent label is zeros with its flag 0,
    a present one keeps the batch's flag (1 when the batch gives none)."""
    rng = np.random.default_rng(0)
    batch = {"atype": np.zeros((2, 4), int), "energy": rng.normal(size=2), "force": rng.normal(size=(2, 12)),
             "find_energy": 0.0}
    labels = batch_labels(batch)
    assert labels["energy"].shape == (2, 1) and labels["force"].shape == (2, 4, 3) and labels["virial"].shape == (2, 9)
    np.testing.assert_array_equal(labels["force"].reshape(2, 12), batch["force"])
    np.testing.assert_array_equal(labels["virial"], np.zeros((2, 9)))
    assert (labels["find_energy"], labels["find_force"], labels["find_virial"]) == (0.0, 1.0, 0.0)

