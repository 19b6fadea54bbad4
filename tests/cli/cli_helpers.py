"""Helpers of the CLI tests: run the real ``dp`` console script on a copy of the alloy example.

``tests/cli/conftest.py`` turns :func:`trained_runs` into the ``trained`` fixture.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "alloy"
BACKENDS = ("pt", "jax", "tf")


def dp(args: list[str], cwd: Path, timeout: float = 900, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m dpmodel.cli ARGS`` (the ``dp`` console script's entry point) in ``cwd``."""
    env = {k: v for k, v in os.environ.items() if k != "DP_BACKEND"}
    result = subprocess.run([sys.executable, "-m", "dpmodel.cli", *args], cwd=cwd, capture_output=True,
                            text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"dp {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def make_case(folder: Path, **training) -> Path:
    """Copy the example's data to ``folder/data`` and write a small ``folder/input.json``; return the input."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data").exists():
        shutil.copytree(EXAMPLE / "data", folder / "data")
    config = json.loads((EXAMPLE / "input.json").read_text())
    config["model"]["descriptor"].update(neuron=[4, 8])
    config["model"]["fitting_net"].update(neuron=[16, 16])
    config["learning_rate"]["decay_steps"] = 4
    config["training"]["training_data"]["batch_size"] = 1
    config["training"]["validation_data"].update(batch_size=1, numb_btch=1)
    config["training"].update({"numb_steps": 8, "disp_freq": 1, "save_freq": 4, "max_ckpt_keep": 10, **training})
    path = folder / "input.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def training_skip_reason(backend: str) -> str | None:
    """Why ``backend`` cannot train here (framework missing, no BackendTrainer yet), or None."""
    from dpmodel.registry import by_name

    info = by_name(backend)
    if not info.available():
        return f"{backend}: {', '.join(info.requires)} not installed"
    for module in (info.train, info.train.rsplit(".", 1)[0] + ".trainer"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin and "class BackendTrainer" in Path(spec.origin).read_text():
            return None
    return f"{backend}: {info.train} defines no BackendTrainer yet (dpmodel.training.protocol)"


def backend_params() -> list:
    """``pytest.param`` per backend, skipped with the reason when it cannot train."""
    params = []
    for name in BACKENDS:
        reason = training_skip_reason(name)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (serialises pytest-xdist workers)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def trained_runs(tmp_path_factory):
    """``get(backend) -> folder`` of an 8-step ``dp -v --<backend> train`` run, made once per test session.

    Under pytest-xdist the folders live in the base directory shared by all workers, and
    a lock makes the first worker that needs a backend's run make it for all of them.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent

    def get(backend: str) -> Path:
        folder = root / f"dp-train-{backend}"
        with _locked(root / f"dp-train-{backend}.lock"):
            if not (folder / "done").exists():
                shutil.rmtree(folder, ignore_errors=True)
                make_case(folder)
                dp(["-v", "--log-path", "train.log", f"--{backend}", "train", "input.json"], folder, check=True)
                (folder / "done").touch()
        return folder

    return get
