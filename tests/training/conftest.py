"""Shared fixtures of the training tests: the alloy example's input and data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "alloy"


@pytest.fixture(scope="session")
def example_input() -> dict:
    """The alloy example's input.json as a dict (data paths relative to ``EXAMPLE``)."""
    return json.loads((EXAMPLE / "input.json").read_text())


@pytest.fixture
def small_config(example_input: dict) -> dict:
    """A normalized, pt-resolved copy of the example with absolute data paths and few steps."""
    from dpmodel.config import normalize
    from dpmodel.config.backend import resolve_for_backend

    config = copy.deepcopy(example_input)
    for key in ("training_data", "validation_data"):
        section = config["training"][key]
        section["systems"] = [str(EXAMPLE / s) for s in section["systems"]]
        section["batch_size"] = 1
    config["training"].update(numb_steps=12, disp_freq=2, save_freq=4, max_ckpt_keep=10)
    config["training"]["validation_data"]["numb_btch"] = 2
    return resolve_for_backend(normalize(config), "pt")
