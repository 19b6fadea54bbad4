"""Option cases, systems and assertions shared by the PyTorch backend tests."""

from __future__ import annotations

import numpy as np
import torch

from systems import CASES, SYSTEMS, TOL, System, make_model, precision, random_system  # noqa: F401


def build(case: str, kind: str = "triclinic", natoms: int = 12, seed: int = 0):
    """``(dpmodel model, system, fparam, aparam)`` of an option case; stats and parameters seeded."""
    system = random_system(kind, natoms=natoms, seed=seed)
    options = CASES[case]
    model = make_model(system, sel=(20, 20), neuron=(4, 8, 16), fitting=(16, 16), **options)
    rng = np.random.default_rng(seed + 7)
    nf, nat = system.atype.shape
    fparam = rng.normal(size=(nf, model.fitting.numb_fparam)) if model.fitting.numb_fparam and case != "default_fparam" else None
    aparam = rng.normal(size=(nf, nat, model.fitting.numb_aparam)) if model.fitting.numb_aparam else None
    if model.fitting.numb_fparam:
        model.fitting.fparam_avg = rng.normal(size=model.fitting.numb_fparam).astype(model.fitting.fparam_avg.dtype)
        model.fitting.fparam_inv_std = rng.uniform(0.5, 2.0, model.fitting.numb_fparam).astype(model.fitting.fparam_avg.dtype)
    if model.fitting.numb_aparam:
        model.fitting.aparam_avg = rng.normal(size=model.fitting.numb_aparam).astype(model.fitting.aparam_avg.dtype)
    return model, system, fparam, aparam


def tensor(array, dtype=torch.float64):
    return None if array is None else torch.tensor(np.asarray(array), dtype=dtype)


def assert_close(actual, expected, tol: float, name: str = "") -> None:
    """Shape first, then values (absolute and relative tolerance ``tol``)."""
    actual = actual.detach().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=name)


OUTPUTS = ("energy", "atom_energy", "force", "virial", "atom_virial")


def compare_outputs(out: dict, ref: dict, tol: float) -> None:
    assert float(np.abs(np.asarray(ref["force"])).max()) > 1e-3, "degenerate test: forces vanish"
    for key in OUTPUTS:
        assert_close(out[key], ref[key], tol, key)


__all__ = ["CASES", "SYSTEMS", "TOL", "System", "assert_close", "build", "compare_outputs", "precision", "tensor"]
