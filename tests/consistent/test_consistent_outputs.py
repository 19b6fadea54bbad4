"""Every backend matches the reference on every grid point, or refuses as documented."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from grid_backends import BACKENDS, Backend
from grid_cases import CASES, Case
from dpmodel.capabilities import is_supported
from dpmodel.errors import UnsupportedOptionError

OUTPUTS = ("energy", "force", "virial", "atom_energy", "atom_virial")


def refused_options(case: Case, backend: Backend) -> list[str]:
    """The options of ``case`` that ``backend`` does not support."""
    return [option for option, value in case.options.items() if not is_supported(option, value, backend.capability)]


def reference_backend(case: Case) -> Backend:
    """The first backend (dpmodel-numpy, else TensorFlow eager) that supports ``case``."""
    return next(b for b in BACKENDS if not refused_options(case, b) and b.missing() is None)


@lru_cache(maxsize=None)
def outputs(case_name: str, backend_name: str, tmp: str) -> dict[str, np.ndarray]:
    from pathlib import Path

    case = next(c for c in CASES if c.name == case_name)
    backend = next(b for b in BACKENDS if b.name == backend_name)
    evaluator = backend.make({"model": case.model_dict()}, Path(tmp))
    system = case.system()
    fparam, aparam = case.params(system)
    out = evaluator.evaluate(system.coord, system.box, system.atype, fparam, aparam, True)
    out = {k: np.asarray(out[k]) for k in OUTPUTS}
    out["descriptor"] = np.asarray(evaluator.eval_descriptor(system.coord, system.box, system.atype))
    return out


def tolerance(case: Case) -> float:
    return 1e-5 if case.precision == "float32" else 1e-10


@pytest.mark.parametrize("backend", BACKENDS, ids=[b.name for b in BACKENDS])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_reference_or_refuses(case: Case, backend: Backend, record_property, tmp_path_factory):
    record_property("grid_case", case.name)
    record_property("grid_backend", backend.name)
    if backend.missing():
        pytest.skip(backend.missing())
    refused = refused_options(case, backend)
    tmp = str(tmp_path_factory.mktemp(f"{case.name}-{backend.name}"))
    if refused:
        with pytest.raises(UnsupportedOptionError) as err:
            outputs(case.name, backend.name, tmp)
        assert any(option in str(err.value) for option in refused), f"{err.value} names none of {refused}"
        record_property("grid_outcome", "refused")
        return
    reference = reference_backend(case)
    want = outputs(case.name, reference.name, str(tmp_path_factory.mktemp(f"{case.name}-ref")))
    got = outputs(case.name, backend.name, tmp)
    tol = tolerance(case)
    for key, expected in want.items():
        scale = max(1.0, float(np.abs(expected).max()))
        assert got[key].shape == expected.shape, f"case {case.name}, backend {backend.name}: {key} shape"
        diff = float(np.abs(got[key] - expected).max())
        assert diff <= tol * scale, (
            f"case {case.name!r}, backend {backend.name!r}, output {key!r}: max |difference| {diff:.3e} "
            f"from {reference.name} exceeds {tol * scale:.1e}")
    record_property("grid_outcome", "pass")
