"""serialize -> deserialize is exact in every backend and every file format."""

from __future__ import annotations

import importlib.util

import pytest

from dpmodel.capabilities import is_supported
from dpmodel.registry import backends, for_suffix, load_model_file, save_model_file
from dpmodel.serialization import trees_equal
from grid_cases import CASES

ROUND_TRIP_CASES = [c for c in CASES if c.name in ("base", "resnet_dt", "two_side_exclude", "float32",
                                                   "exclude_types", "env_protection", "fparam_aparam")]
SUFFIXES = [s for info in backends().values() for s in info.suffixes if s != ".pt"]


def missing(suffix: str) -> str | None:
    info = for_suffix(f"model{suffix}")
    return None if info.available() else f"backend {info.name} is not installed"


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=[c.name for c in ROUND_TRIP_CASES])
def test_file_round_trip_is_exact(case, suffix, tmp_path):
    if missing(suffix):
        pytest.skip(missing(suffix))
    info = for_suffix(f"model{suffix}")
    data = case.model_dict()
    # .dp/.yaml store any valid dict (TF-only models included); native files need support
    supported = info.name == "dpmodel" or all(is_supported(o, v, info.name) for o, v in case.options.items())
    path = tmp_path / f"model{suffix}"
    if not supported:
        from dpmodel.errors import UnsupportedOptionError

        with pytest.raises(UnsupportedOptionError):
            save_model_file(path, {"model": data})
        assert not path.exists(), "a refused conversion must write nothing"
        return
    save_model_file(path, {"model": data, "model_def_script": {"type_map": ["A", "B"]}})
    back = load_model_file(path)
    assert trees_equal(back["model"], data) == [], f"{case.name} through {suffix}"
    assert back["model_def_script"] == {"type_map": ["A", "B"]}


MODULE_ROUND_TRIPS = {
    "dpmodel": "dpmodel.model_factory",
    "pt": "backends.pt.modules",
    "jax": "backends.jax.modules",
    "tf": "backends.tf.modules",
}


@pytest.mark.parametrize("backend", list(MODULE_ROUND_TRIPS))
@pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=[c.name for c in ROUND_TRIP_CASES])
def test_module_round_trip_is_exact(case, backend):
    framework = {"dpmodel": "numpy", "pt": "torch", "jax": "jax", "tf": "tensorflow"}[backend]
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    module = importlib.import_module(MODULE_ROUND_TRIPS[backend])
    data = case.model_dict()
    if not all(is_supported(o, v, backend) for o, v in case.options.items()):
        from dpmodel.errors import UnsupportedOptionError

        with pytest.raises(UnsupportedOptionError):
            module.model_from_dict(data)
        return
    assert trees_equal(module.model_from_dict(data).serialize(), data) == []
