"""Train DeePMD-kit's se_e2_r water example for 2000 steps and report the validation force RMSE and s/step.

Usage::

    python benchmarks/train_water.py [--steps 2000] [--backend pt] [--deepmd] [--workdir DIR] [--write-docs]

The input is DeePMD-kit's ``examples/water/se_e2_r/input.json`` unchanged except for
``numb_steps`` and the data paths (``../shared/data/water``: ``data_0..2`` train,
``data_3`` validates). ``dp --<backend> train`` runs it through the real command line;
the model is frozen to ``.dp`` and ``dp test`` measures the force RMSE on every frame
of ``data_3``. With ``--deepmd`` the same input is trained in the same run by
DeePMD-kit 3.2.0 (interpreter ``$DEEPMD_PYTHON`` or ``../dpvenv/bin/python``, PyTorch backend); its
checkpoint is converted to ``.dp`` with DeePMD-kit's own ``convert-backend`` and tested
by the same ``dp test``, so both numbers come from one evaluation code.
Both runs use the default device of their framework (a GPU when present).
``--write-docs`` also stores the table as this script's section of
``docs/benchmarks/results.md`` (see ``common.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CXX_OP_STUB, DEEPMD_PYTHON, WATER, table, write_docs_section

#: DeePMD-kit's ``dp`` main under its interpreter, with the C++-op loader stubbed as in common.py
DEEPMD_MAIN = CXX_OP_STUB + "from deepmd.main import main\nsys.argv[0] = 'dp'\nsys.exit(main())\n"

#: DeePMD-kit's examples/water/se_e2_r/input.json (numb_steps and systems are set by write_input)
INPUT = {
    "model": {
        "type_map": ["O", "H"],
        "descriptor": {"type": "se_e2_r", "sel": [46, 92], "rcut_smth": 0.5, "rcut": 6.0, "neuron": [5, 10, 20],
                       "resnet_dt": False, "seed": 1},
        "fitting_net": {"neuron": [120, 120, 120], "resnet_dt": True, "seed": 1},
    },
    "learning_rate": {"type": "exp", "decay_steps": 5000, "start_lr": 0.005, "stop_lr": 3.51e-8},
    "loss": {"start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1,
             "start_pref_v": 0, "limit_pref_v": 0},
    "training": {
        "training_data": {"systems": [], "batch_size": "auto"},
        "validation_data": {"systems": [], "batch_size": 1, "numb_btch": 3},
        "numb_steps": 2000, "seed": 1, "disp_file": "lcurve.out", "disp_freq": 100, "numb_test": 10,
        "save_freq": 1000,
    },
}


def write_input(folder: Path, steps: int, water: Path) -> Path:
    """The example input with absolute paths to the ``water`` systems and ``steps`` steps, in ``folder``."""
    config = json.loads(json.dumps(INPUT))
    water = water.resolve()
    config["training"]["training_data"]["systems"] = [str(water / f"data_{i}") for i in range(3)]
    config["training"]["validation_data"]["systems"] = [str(water / "data_3")]
    config["training"]["numb_steps"] = steps
    config["training"]["save_freq"] = min(1000, steps)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "input.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def run(command: list[str], folder: Path, log: str) -> float:
    """Run ``command`` in ``folder`` with its output in ``folder/log``; return the wall time."""
    start = time.perf_counter()
    with open(folder / log, "w") as out:
        proc = subprocess.run(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {folder}; see {folder / log}")
    return time.perf_counter() - start


def last_val_force(folder: Path) -> float:
    """``rmse_f_val`` of the last ``lcurve.out`` row."""
    import numpy as np

    table = np.genfromtxt(folder / "lcurve.out", names=True)
    return float(np.atleast_1d(table["rmse_f_val"])[-1])


def test_force_rmse(model: Path, folder: Path, water: Path) -> float:
    """Force RMSE of ``model`` on every frame of data_3, by this project's ``dp test``."""
    out = subprocess.run([sys.executable, "-m", "dpmodel.cli", "-q", "test", "-m", str(model), "-s",
                          str(water.resolve() / "data_3")], cwd=folder, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"^\s*force\s+(\S+)", out, re.M).group(1))


def seconds_per_step(folder: Path, log: str, wall: float, steps: int) -> float:
    """The trainer's own average (warm-up excluded) when it prints one, else wall time / steps."""
    text = (folder / log).read_text()
    found = re.search(r"average training time: ([\d.]+) s/(?:step|batch)", text)
    return float(found.group(1)) if found else wall / steps


def ours(root: Path, backend: str, steps: int, water: Path) -> dict:
    folder = root / f"dpmodel-{backend}"
    write_input(folder, steps, water)
    dp = [sys.executable, "-m", "dpmodel.cli"]
    wall = run([*dp, f"--{backend}", "train", "input.json"], folder, "train.log")
    run([*dp, "freeze", "-o", "model.dp"], folder, "freeze.log")
    return {"run": f"dpmodel --{backend}", "wall_s": wall, "s_per_step": seconds_per_step(folder, "train.log", wall, steps),
            "lcurve_rmse_f_val": last_val_force(folder), "test_rmse_f": test_force_rmse(folder / "model.dp", folder, water)}


def deepmd(root: Path, steps: int, water: Path) -> dict:
    folder = root / "deepmd-kit-pt"
    write_input(folder, steps, water)
    env_dp = [DEEPMD_PYTHON, "-c", DEEPMD_MAIN]
    wall = run([*env_dp, "--pt", "train", "input.json"], folder, "train.log")
    run([*env_dp, "convert-backend", "model.ckpt.pt", "model.dp"], folder, "convert.log")
    return {"run": "DeePMD-kit 3.2.0 --pt", "wall_s": wall,
            "s_per_step": seconds_per_step(folder, "train.log", wall, steps),
            "lcurve_rmse_f_val": last_val_force(folder), "test_rmse_f": test_force_rmse(folder / "model.dp", folder, water)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--backend", default="pt", choices=["pt", "jax", "tf"])
    parser.add_argument("--deepmd", action="store_true", help=f"also train with DeePMD-kit ({DEEPMD_PYTHON})")
    parser.add_argument("--data", type=Path, default=WATER, help="the water data (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dpmodel-train-water")
    parser.add_argument("--write-docs", action="store_true",
                        help="also write this section of docs/benchmarks/results.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"needs the water data at {args.data} (../shared/data/water beside the checkout, or --data)")
    rows = [ours(args.workdir, args.backend, args.steps, args.data)]
    if args.deepmd:
        rows.append(deepmd(args.workdir, args.steps, args.data))
    print(f"se_e2_r water, {args.steps} steps; force RMSE in eV/Å (test: all 80 frames of data_3)")
    print(f"{'run':<24}{'rmse_f_val (lcurve)':>20}{'test rmse_f':>14}{'s/step':>10}{'wall s':>10}")
    for row in rows:
        print(f"{row['run']:<24}{row['lcurve_rmse_f_val']:>20.4f}{row['test_rmse_f']:>14.4f}"
              f"{row['s_per_step']:>10.4f}{row['wall_s']:>10.1f}")
    ratio = ""
    if len(rows) == 2:
        ratio = (f"ratio dpmodel / DeePMD-kit (test rmse_f): {rows[0]['test_rmse_f'] / rows[1]['test_rmse_f']:.3f} "
                 "(acceptance: <= 1.1)")
        print(ratio)
    if args.write_docs:
        columns = {"run": "run", "lcurve_rmse_f_val": "rmse_f_val (lcurve)", "test_rmse_f": "test rmse_f",
                   "s_per_step": "s/step", "wall_s": "wall s"}
        body = (f"DeePMD-kit's `examples/water/se_e2_r` input, {args.steps} steps (`data_0..2` train, `data_3` "
                "validates); force RMSE in eV/Å (test: every frame of `data_3`, by this project's `dp test`); "
                "s/step is the trainer's own average when it prints one, else wall time / steps. Default device "
                "of each framework.\n\n"
                + table([{columns[k]: v for k, v in row.items()} for row in rows], list(columns.values()))
                + (f"\n{ratio}\n" if ratio else ""))
        path = write_docs_section("train_water", "Training the se_e2_r water example", body, deepmd=args.deepmd)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
