"""The PyTorch-trained water energy model of the references: DeePMD-kit input, training and
freezing by DeePMD-kit's ``dp``, and its float32 copy."""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

import numpy as np

from refgen.common import install_cxx_op_stub, read_lcurve, run_self, training_sections, WATER_SE_R


def pt_input(water: Path, precision: str, steps: int) -> dict:
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {**WATER_SE_R, "activation_function": "tanh", "precision": precision, "seed": 1},
            "fitting_net": {
                "neuron": [120, 120, 120],
                "resnet_dt": True,
                "activation_function": "tanh",
                "precision": precision,
                "seed": 1,
            },
        },
        **training_sections(water, steps, validation=True),
    }


def train_pt_model(work: Path, water: Path, precision: str, steps: int, reuse: bool) -> dict:
    info_file = work / "train_info.json"
    if reuse and info_file.is_file():
        info = json.loads(info_file.read_text())
        if info["train_steps"] == steps:
            print(f"  reusing the training run in {work}")
            return info
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "input.json").write_text(json.dumps(pt_input(water, precision, steps), indent=2))
    t0 = time.time()
    run_self(["dp", "--pt", "train", "input.json"], work, work / "train.log")
    t1 = time.time()
    run_self(["dp", "--pt", "freeze", "-o", "model.pth"], work, work / "freeze.log")
    run_self(["dp", "convert-backend", "model.pth", "model.dp"], work, work / "conv.log")
    run_self(["dp", "convert-backend", "model.pth", "model.yaml"], work, work / "conv2.log")
    info = {
        "train_steps": steps,
        "train_seconds": round(t1 - t0, 1),
        "lcurve": read_lcurve(work / "lcurve.out"),
        "input_json": pt_input(Path("<water>"), precision, steps),
    }
    info_file.write_text(json.dumps(info))
    return info


def make_f32_model(src: Path, dst: Path) -> dict:
    """Float32 copy of the trained float64 model (same weights, cast by deepmd).

    The float64 envelope is read back, every ``precision`` of the descriptor, the
    embedding/fitting nets and their layers is set to ``float32`` (also in
    ``model_def_script``), and deepmd's PyTorch backend builds the TorchScript model
    from that dict (``deserialize_to_file``, i.e. what ``dp convert-backend x.dp y.pth``
    does); the ``.dp`` / expected values then come from that ``.pth``.
    """
    install_cxx_op_stub()
    from deepmd.dpmodel.utils.serialization import load_dp_model
    from deepmd.pt.utils.serialization import deserialize_to_file

    dst.mkdir(parents=True, exist_ok=True)
    data = load_dp_model(str(src / "model.dp"))
    for k in ("software", "version", "time"):
        data.pop(k, None)
    data = copy.deepcopy(data)

    def walk(x):
        if isinstance(x, dict):
            if "precision" in x:
                x["precision"] = "float32"
            if x.get("@class") == "Layer":
                # deepmd's PT layer keeps the array dtype it is given
                for k, v in x["@variables"].items():
                    if v is not None:
                        x["@variables"][k] = np.asarray(v, dtype=np.float32)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data["model"]["descriptor"])
    dv = data["model"]["descriptor"]["@variables"]
    for k in ("davg", "dstd"):
        dv[k] = np.asarray(dv[k], dtype=np.float32)
    walk(data["model"]["fitting"])
    data["model_def_script"]["descriptor"]["precision"] = "float32"
    data["model_def_script"]["fitting_net"]["precision"] = "float32"
    deserialize_to_file(str(dst / "model.pth"), data)
    run_self(["dp", "convert-backend", "model.pth", "model.dp"], dst, dst / "conv.log")
    return {"made_from": "float64 model cast to float32 (precision fields changed)"}
