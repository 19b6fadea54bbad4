"""Bad inputs: ``dp train`` exits non-zero with one line naming the key or file, and writes nothing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from cli_helpers import dp, make_case, training_skip_reason


def _break(case, kind: str) -> str:
    """Spoil ``case`` in one way; return the text the error line must contain."""
    path = case / "input.json"
    config = json.loads(path.read_text())
    if kind == "unknown key":
        config["model"]["descriptor"]["rcut_smthh"] = 0.5
        expected = "model/descriptor/rcut_smthh"
    elif kind == "misplaced key":
        config["model"]["numb_steps"] = 10
        expected = "training/numb_steps"
    elif kind == "missing data file":
        (case / "data" / "train" / "set.000" / "coord.npy").unlink()
        expected = "coord.npy"
    elif kind == "element not in type_map":
        config["model"]["type_map"] = ["Cu", "Ag"]
        expected = "'Au'"
    elif kind == "sel too small":
        config["model"]["descriptor"]["sel"] = [20, 16]
        expected = "at least [37, 16]"
    elif kind == "type_one_side false":
        config["model"]["descriptor"]["type_one_side"] = False
        expected = "--tf"
    elif kind == "overlapping atoms":
        coord = np.load(case / "data" / "valid" / "set.000" / "coord.npy")
        coord[2, 3:6] = coord[2, :3] + 0.01
        np.save(case / "data" / "valid" / "set.000" / "coord.npy", coord)
        expected = "frame 2: atoms 0 and 1"
    path.write_text(json.dumps(config))
    return expected


KINDS = ["unknown key", "misplaced key", "missing data file", "element not in type_map", "sel too small",
         "type_one_side false", "overlapping atoms"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_fails_cleanly(tmp_path, kind) -> None:
    if (reason := training_skip_reason("pt")) is not None:
        pytest.skip(reason)
    make_case(tmp_path)
    expected = _break(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = dp(["--pt", "train", "input.json"], tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_verbose_shows_the_traceback(tmp_path) -> None:
    make_case(tmp_path)
    _break(tmp_path, "unknown key")
    result = dp(["-v", "train", "input.json"], tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_missing_input_and_bad_restart(tmp_path) -> None:
    result = dp(["train", "nowhere.json"], tmp_path)
    assert result.returncode == 1 and "nowhere.json" in result.stderr
    make_case(tmp_path)
    shutil.copy(tmp_path / "input.json", tmp_path / "in2.json")
    result = dp(["train", "input.json", "--restart", "missing.dp"], tmp_path)
    assert result.returncode == 1 and "missing.dp" in result.stderr
    assert not (tmp_path / "out.json").exists()
