"""``dp compress``: any model file in, a compressed file of any format out; clear refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dpmodel import io
from dpmodel.cli import main
from dpmodel.compress import compress_model_dict
from dpmodel.descriptor import DescrptSeR
from dpmodel.data import DeepmdSystem, expand_systems
from dpmodel.registry import load_model_file
from dpmodel.serialization import trees_equal
from dpmodel.training.neighbor_stat import neighbor_stat
from systems import make_model, random_system

ALLOY = Path(__file__).resolve().parents[2] / "examples" / "alloy"
TYPE_MAP = ["Cu", "Au"]


@pytest.fixture(scope="module")
def model():
    system = random_system("triclinic", natoms=16, nframes=1, seed=12)
    model = make_model(system, rcut=5.0, neuron=(4, 8), fitting=(16, 16))
    model.type_map = list(TYPE_MAP)
    return model


def write_case(folder: Path, model, **envelope) -> tuple[Path, Path]:
    """``folder/frozen.dp`` (without min_nbor_dist unless given) and ``folder/input.json`` over the alloy data."""
    shutil.copytree(ALLOY / "data" / "train", folder / "data" / "train")
    config = json.loads((ALLOY / "input.json").read_text())
    config["training"]["training_data"]["systems"] = ["data/train"]
    config["training"].pop("validation_data", None)
    (folder / "input.json").write_text(json.dumps(config))
    io.save(folder / "frozen.dp", {"model": model.serialize(), "model_def_script": config["model"], **envelope})
    return folder / "frozen.dp", folder / "input.json"


def test_console_script_computes_min_nbor_dist_from_the_training_script(model, tmp_path):
    source, script = write_case(tmp_path, model)
    result = subprocess.run([sys.executable, "-m", "dpmodel.cli", "compress", "-i", source.name, "-o", "out.dp",
                             "-t", script.name, "-s", "0.05"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert "largest relative difference" in result.stderr
    data = io.load(tmp_path / "out.dp")
    systems = [DeepmdSystem(p, TYPE_MAP) for p in expand_systems(tmp_path / "data" / "train")]
    assert float(data["@variables"]["min_nbor_dist"]) == neighbor_stat(systems, 5.0, 2).min_dist
    descriptor = data["model"]["descriptor"]
    assert descriptor["@version"] == 3
    assert [info[3] for info in descriptor["compress"]["@variables"]["compress_info"]] == [0.05, 0.05]
    assert data["model_def_script"] == json.loads(script.read_text())["model"]


def test_recorded_min_nbor_dist_and_native_output(model, tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed")
    source, _ = write_case(tmp_path, model, **{"@variables": {"min_nbor_dist": 1.5}})
    assert main(["compress", "-i", str(source), "-o", str(tmp_path / "out.pth"), "-e", "4", "-f", "100"]) == 0
    data = io.load(source)
    back = load_model_file(tmp_path / "out.pth")
    assert trees_equal(back["model"], compress_model_dict(data["model"], 1.5, 0.01, 4, 100)) == []


def test_missing_min_nbor_dist_is_a_clear_error(model, tmp_path, capsys):
    source, _ = write_case(tmp_path, model)
    assert main(["compress", "-i", str(source), "-o", str(tmp_path / "out.dp")]) == 1
    assert "-t input.json" in capsys.readouterr().err
    assert not (tmp_path / "out.dp").exists()


def test_type_embedding_is_refused(model, tmp_path, capsys):
    data = {**model.serialize(), "type_embedding": {"neuron": [8]}}
    io.save(tmp_path / "tebd.dp", {"model": data, "@variables": {"min_nbor_dist": 1.0}})
    assert main(["compress", "-i", str(tmp_path / "tebd.dp"), "-o", str(tmp_path / "out.dp")]) == 1
    assert "type_embedding" in capsys.readouterr().err
    assert not (tmp_path / "out.dp").exists()


class TwoSide(DescrptSeR):
    """Builds the dict of a ``type_one_side=False`` descriptor (TensorFlow's layout) in dpmodel."""

    backend = "tf"


def test_type_one_side_false_is_refused_for_pytorch(tmp_path, capsys):
    system = random_system("triclinic", natoms=12, nframes=1, seed=13)
    data = make_model(system, neuron=(4, 8), fitting=(16, 16), descriptor_class=TwoSide,
                      descriptor_options={"type_one_side": False}).serialize()
    io.save(tmp_path / "two.dp", {"model": data, "@variables": {"min_nbor_dist": 1.0}})
    assert main(["compress", "-i", str(tmp_path / "two.dp"), "-o", str(tmp_path / "out.pth")]) == 1
    err = capsys.readouterr().err
    assert "type_one_side" in err and "--tf" in err
    assert main(["compress", "-i", str(tmp_path / "two.dp"), "-o", str(tmp_path / "out.yaml"), "-s", "0.5"]) == 0
