"""input.json schema: defaults, aliases, comments, strict full-path errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dpmodel.config import input_args, load_input, normalize, schema_docs
from dpmodel.config.keys import key_index
from dpmodel.data import expand_systems
from dpmodel.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "alloy" / "input.json"


def minimal() -> dict[str, Any]:
    """The smallest valid input (only required keys)."""
    return {
        "model": {"type_map": ["O", "H"], "descriptor": {"type": "se_e2_r"}},
        "learning_rate": {"start_lr": 1e-3},
        "training": {"training_data": {"systems": "data"}, "numb_steps": 10},
    }


def test_defaults_are_deepmd_defaults() -> None:
    config = normalize(minimal())
    descriptor = config["model"]["descriptor"]
    assert descriptor["sel"] == "auto" and descriptor["rcut"] == 6.0
    assert descriptor["rcut_smth"] == 0.5 and descriptor["neuron"] == [10, 20, 40]
    # type_one_side stays None: its default depends on the backend (dpmodel.config.backend)
    assert descriptor["type_one_side"] is None and descriptor["precision"] == "default"
    fitting = config["model"]["fitting_net"]
    assert fitting["type"] == "ener" and fitting["neuron"] == [120, 120, 120]
    assert fitting["resnet_dt"] is True and fitting["rcond"] is None
    assert config["model"]["data_stat_nbatch"] == 10
    assert config["model"]["data_stat_protect"] == 1e-2
    lr = config["learning_rate"]
    assert lr["type"] == "exp" and lr["decay_steps"] == 5000 and lr["stop_lr"] is None
    loss = config["loss"]
    assert loss["type"] == "ener"
    prefs = [loss[f"{w}_pref_{x}"] for x in "efv" for w in ("start", "limit")]
    assert prefs == [0.02, 1.0, 1000.0, 1.0, 0.0, 0.0]
    training = config["training"]
    assert training["training_data"]["batch_size"] == "auto"
    assert training["training_data"]["auto_prob"] == "prob_sys_size"
    assert training["validation_data"] is None
    assert (training["disp_file"], training["disp_freq"]) == ("lcurve.out", 1000)
    assert (training["save_ckpt"], training["max_ckpt_keep"]) == ("model.ckpt", 5)


def test_input_is_not_modified() -> None:
    config = minimal()
    before = copy.deepcopy(config)
    normalize(config)
    assert config == before


def test_aliases_become_canonical_keys() -> None:
    config = minimal()
    config["model"]["descriptor"]["type"] = "se_r"
    config["model"]["fitting_net"] = {"n_neuron": [4, 4]}
    training = config["training"]
    training["stop_batch"] = training.pop("numb_steps")
    training["training_data"]["auto_prob_style"] = "prob_uniform"
    training["validation_data"] = {"systems": ["v"], "numb_batch": 3}
    out = normalize(config)
    assert out["model"]["descriptor"]["type"] == "se_e2_r"
    assert out["model"]["fitting_net"]["neuron"] == [4, 4]
    assert "n_neuron" not in out["model"]["fitting_net"]
    assert out["training"]["numb_steps"] == 10 and "stop_batch" not in out["training"]
    assert out["training"]["training_data"]["auto_prob"] == "prob_uniform"
    assert out["training"]["validation_data"]["numb_btch"] == 3
    config["training"]["num_steps"] = config["training"].pop("stop_batch")
    assert normalize(config)["training"]["numb_steps"] == 10


def test_comments_are_dropped_everywhere() -> None:
    config = minimal()
    config["_comment"] = "top"
    config["model"]["descriptor"]["_comment"] = "deep"
    config["training"]["training_data"]["_note"] = "data"
    out = normalize(config)
    assert "_comment" not in out and "_comment" not in out["model"]["descriptor"]
    assert "_note" not in out["training"]["training_data"]


def rejects(mutate: Any) -> str:
    """Apply ``mutate`` to the minimal input and return the ConfigError text."""
    config = minimal()
    mutate(config)
    with pytest.raises(ConfigError) as info:
        normalize(config)
    return str(info.value)


@pytest.mark.parametrize(
    ("section", "key", "home"),
    [
        (("model",), "numb_steps", "training/numb_steps"),
        (("training",), "rcut", "model/descriptor/rcut"),
        (("model", "fitting_net"), "start_pref_f", "loss/start_pref_f"),
        (("learning_rate",), "stop_batch", "training/numb_steps"),
        (("model", "descriptor"), "disp_freq", "training/disp_freq"),
    ],
)
def test_misplaced_key_names_path_and_home(
    section: tuple[str, ...], key: str, home: str
) -> None:
    def mutate(config: dict) -> None:
        target = config
        for name in section:
            target = target.setdefault(name, {})
        target[key] = 1

    message = rejects(mutate)
    assert message.startswith(f"{'/'.join(section)}/{key}: unknown key")
    assert f"belongs at {home}" in message


def test_typo_suggests_closest_key() -> None:
    message = rejects(lambda c: c["model"]["descriptor"].update(rcut_smht=0.5))
    assert message.startswith("model/descriptor/rcut_smht: unknown key")
    assert "did you mean 'rcut_smth'" in message


def test_unknown_top_level_key_lists_sections() -> None:
    message = rejects(lambda c: c.update(nvnmd={}))
    assert message.startswith("nvnmd: unknown key")
    assert "learning_rate, loss, model, training" in message


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda c: c["model"]["descriptor"].update(rcut_smth="0.5"), "rcut_smth"),
        (lambda c: c["model"]["descriptor"].update(neuron=[1.5]), "neuron"),
        (lambda c: c["model"]["descriptor"].update(sel="all"), "sel"),
        (lambda c: c["model"]["descriptor"].update(precision="fp8"), "precision"),
        (lambda c: c["model"]["descriptor"].update(type="se_e2_a"), "type"),
        (lambda c: c["model"]["descriptor"].pop("type"), "type"),
    ],
)
def test_bad_descriptor_values_name_the_key(mutate: Any, path: str) -> None:
    assert rejects(mutate).startswith(f"model/descriptor/{path}:")


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda c: c["training"].pop("numb_steps"), "training/numb_steps"),
        (lambda c: c["learning_rate"].pop("start_lr"), "learning_rate/start_lr"),
        (lambda c: c["model"].pop("descriptor"), "model/descriptor"),
        (lambda c: c.pop("training"), "training"),
        (lambda c: c["training"].update(numb_steps=1.5), "training/numb_steps"),
        (lambda c: c["model"].update(descriptor=[]), "model/descriptor"),
        (lambda c: c["model"].update(type="zbl"), "model/type"),
    ],
)
def test_missing_or_mistyped_keys_name_the_path(mutate: Any, path: str) -> None:
    assert rejects(mutate).startswith(f"{path}:")


@pytest.mark.parametrize("rule", ["auto:x", "mixed:32", 0, "max"])
def test_bad_batch_size(rule: object) -> None:
    message = rejects(lambda c: c["training"]["training_data"].update(batch_size=rule))
    assert message.startswith("training/training_data/batch_size:")


def test_cross_key_checks() -> None:
    def rcut(config: dict) -> None:
        config["model"]["descriptor"].update(rcut=4.0, rcut_smth=4.0)

    assert "rcut_smth = 4.0 must satisfy" in rejects(rcut)
    message = rejects(lambda c: c["model"]["descriptor"].update(sel=[1, 2, 3]))
    assert "sel has 3 entries but model/type_map has 2" in message
    both = {"stop_lr": 1e-8, "stop_lr_ratio": 1e-3}
    message = rejects(lambda c: c["learning_rate"].update(both))
    assert "mutually exclusive" in message
    assert "disp_freq = 0" in rejects(lambda c: c["training"].update(disp_freq=0))


def test_sel_forms_accepted() -> None:
    for sel in ("auto", "auto:1.5", [3, 4]):
        config = minimal()
        config["model"]["descriptor"]["sel"] = sel
        assert normalize(config)["model"]["descriptor"]["sel"] == sel


def test_config_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        normalize({"model": 1})


def test_key_index_is_built_from_schema() -> None:
    index = key_index(input_args())
    assert index["numb_steps"] == ["training/numb_steps"]
    assert index["stop_batch"] == ["training/numb_steps"]
    assert index["rcut_smth"] == ["model/descriptor/rcut_smth"]
    assert "model/fitting_net/neuron" in index["n_neuron"]
    assert "model/descriptor/neuron" in index["neuron"]


def test_load_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text(json.dumps(minimal()))
    yaml = pytest.importorskip("yaml")
    (tmp_path / "in.yaml").write_text(yaml.safe_dump(minimal()))
    assert load_input(tmp_path / "in.json") == load_input(tmp_path / "in.yaml")
    (tmp_path / "in.toml").write_text("")
    with pytest.raises(ConfigError, match="unknown input suffix"):
        load_input(tmp_path / "in.toml")
    (tmp_path / "bad.json").write_text("{\"model\": ")
    with pytest.raises(ConfigError, match="bad.json is not valid JSON"):
        load_input(tmp_path / "bad.json")


def test_schema_docs_cover_every_section() -> None:
    docs = schema_docs()
    for key in ("rcut_smth", "numb_steps", "start_pref_e", "decay_steps", "se_e2_r"):
        assert key in docs


def test_example_input_is_valid() -> None:
    config = load_input(EXAMPLE)
    descriptor = config["model"]["descriptor"]
    assert config["model"]["type_map"] == ["Cu", "Au"]
    assert len(descriptor["sel"]) == 2 and descriptor["rcut_smth"] < descriptor["rcut"]
    assert config["training"]["numb_steps"] == 300
    for data in ("training_data", "validation_data"):
        systems = config["training"][data]["systems"]
        assert expand_systems(systems, root=EXAMPLE.parent)
