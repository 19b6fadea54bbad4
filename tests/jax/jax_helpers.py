"""Option cases, systems and assertions shared by the JAX backend tests."""

from __future__ import annotations

import numpy as np

from systems import CASES, SYSTEMS, TOL, System, make_model, precision, random_system  # noqa: F401


#: (case, system) pairs of the output grid: every case once, ``base`` on every system,
#: geometries rotated over the cases (each pair is one compilation, so not the full product)
GRID = [("base", kind) for kind in SYSTEMS] + [
    (case, SYSTEMS[i % len(SYSTEMS)]) for i, case in enumerate(c for c in CASES if c != "base")
]


def build(case: str, kind: str = "triclinic", natoms: int = 12, seed: int = 0):
    """``(dpmodel model, system, fparam, aparam)`` of an option case; stats and parameters seeded."""
    system = random_system(kind, natoms=natoms, seed=seed)
    model = make_model(system, sel=(20, 20), neuron=(4, 8, 16), fitting=(16, 16), **CASES[case])
    rng = np.random.default_rng(seed + 7)
    nf, nat = system.atype.shape
    fitting = model.fitting
    fparam = rng.normal(size=(nf, fitting.numb_fparam)) if fitting.numb_fparam and case != "default_fparam" else None
    aparam = rng.normal(size=(nf, nat, fitting.numb_aparam)) if fitting.numb_aparam else None
    if fitting.numb_fparam:
        fitting.fparam_avg = rng.normal(size=fitting.numb_fparam).astype(fitting.fparam_avg.dtype)
        fitting.fparam_inv_std = rng.uniform(0.5, 2.0, fitting.numb_fparam).astype(fitting.fparam_avg.dtype)
    if fitting.numb_aparam:
        fitting.aparam_avg = rng.normal(size=fitting.numb_aparam).astype(fitting.aparam_avg.dtype)
    return model, system, fparam, aparam


def assert_close(actual, expected, tol: float, name: str = "") -> None:
    """Type, shape and dtype class first, then values (absolute and relative tolerance ``tol``)."""
    __tracebackhide__ = True
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype.kind == expected.dtype.kind, f"{name}: dtype {actual.dtype} vs {expected.dtype}"
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=name)


OUTPUTS = ("energy", "atom_energy", "force", "virial", "atom_virial")


def compare_outputs(out: dict, ref: dict, tol: float) -> None:
    """Every output of :data:`OUTPUTS`; refuses a degenerate reference with vanishing forces."""
    __tracebackhide__ = True
    assert float(np.abs(np.asarray(ref["force"])).max()) > 1e-3, "degenerate test: forces vanish"
    for key in OUTPUTS:
        assert_close(out[key], ref[key], tol, key)


__all__ = ["CASES", "GRID", "SYSTEMS", "TOL", "System", "assert_close", "build", "compare_outputs", "precision"]
