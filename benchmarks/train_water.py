"""Train DeePMD-kit's se_e2_r water example for 2000 steps and report the validation force RMSE and s/step.

Usage::

    python benchmarks/train_water.py [--steps 2000] [--backends pt jax tf] [--deepmd] [--seeds 1 2 3]
                                     [--from-deepmd-init pt] [--jobs 2] [--workdir DIR] [--write-docs]

The input is DeePMD-kit's ``examples/water/se_e2_r/input.json`` unchanged except for
``numb_steps``, the data paths (``../shared/data/water``: ``data_0..2`` train, ``data_3``
validates) and, per ``--seeds`` entry, the three seeds (training, descriptor, fitting).
``dp --<backend> train`` runs it through the real command line; the model is frozen to
``.dp`` and ``dp test`` measures the force RMSE on every frame of ``data_3``. With
``--deepmd`` the same inputs are trained in the same run by DeePMD-kit 3.2.0 (interpreter
``$DEEPMD_PYTHON`` or ``../dpvenv/bin/python``, PyTorch backend); its checkpoint is converted
to ``.dp`` with DeePMD-kit's own ``convert-backend`` and tested by the same ``dp test``, so
every number comes from one evaluation code. A single seed compares two random
initialisations as much as two codes, so the summary gives the mean over seeds, and
``--from-deepmd-init pt`` also trains the named backends from DeePMD-kit's own initial
model of each seed, which takes the initialisation out of the comparison.
``--jobs N`` trains N runs at once, each with one thread (``OMP_NUM_THREADS=1``); s/step
then describes that setting. Every run uses the default device of its framework.
``--write-docs`` also stores the tables as this script's section of
``docs/benchmarks/results.md`` (see ``common.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import DEEPMD_PYTHON, WATER, table, write_docs_section
from deepmd_runner import CXX_OP_STUB

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


def write_input(folder: Path, steps: int, water: Path, seed: int = 1) -> Path:
    """The example input with absolute paths to the ``water`` systems, ``steps`` steps and ``seed``, in ``folder``."""
    config = json.loads(json.dumps(INPUT))
    for section in (config["training"], config["model"]["descriptor"], config["model"]["fitting_net"]):
        section["seed"] = seed
    water = water.resolve()
    config["training"]["training_data"]["systems"] = [str(water / f"data_{i}") for i in range(3)]
    config["training"]["validation_data"]["systems"] = [str(water / "data_3")]
    config["training"]["numb_steps"] = steps
    config["training"]["save_freq"] = max(1, min(1000, steps))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "input.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def run(command: list[str], folder: Path, log: str, env: dict | None = None) -> float:
    """Run ``command`` in ``folder`` with its output in ``folder/log``; return the wall time."""
    start = time.perf_counter()
    with open(folder / log, "w") as out:
        proc = subprocess.run(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {folder}; see {folder / log}")
    return time.perf_counter() - start


def last_val_force(folder: Path) -> float:
    """``rmse_f_val`` of the last ``lcurve.out`` row."""
    import numpy as np

    table = np.genfromtxt(folder / "lcurve.out", names=True)
    return float(np.atleast_1d(table["rmse_f_val"])[-1])


def test_force_rmse(model: Path, folder: Path, water: Path, backend: str | None = None) -> float:
    """Force RMSE of ``model`` on every frame of data_3, by this project's ``dp test`` (with ``--backend``
    when given: a TensorFlow model with ``type_one_side = false`` evaluates only there)."""
    flag = [f"--{backend}"] if backend else []
    out = subprocess.run([sys.executable, "-m", "dpmodel.cli", *flag, "-q", "test", "-m", str(model), "-s",
                          str(water.resolve() / "data_3")], cwd=folder, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"^\s*force\s+(\S+)", out, re.M).group(1))


def seconds_per_step(folder: Path, log: str, wall: float, steps: int) -> float:
    """The trainer's own average (warm-up excluded) when it prints one, else wall time / steps."""
    text = (folder / log).read_text()
    found = re.search(r"average training time: ([\d.]+) s/(?:step|batch)", text)
    return float(found.group(1)) if found else wall / steps


def finished(folder: Path, steps: int) -> bool:
    """Whether ``folder`` holds a frozen ``model.dp`` and an lcurve that reached ``steps``."""
    if not (folder / "model.dp").is_file() or not (folder / "lcurve.out").is_file():
        return False
    rows = [line.split() for line in (folder / "lcurve.out").read_text().splitlines() if line.strip()[:1].isdigit()]
    return bool(rows) and int(rows[-1][0]) >= steps


_INIT_LOCK = threading.Lock()


def deepmd_initial_model(root: Path, seed: int, water: Path, env: dict) -> Path:
    """DeePMD-kit's model before its first step for ``seed`` (weights, statistics, energy bias), as ``.dp``.

    DeePMD-kit trains the input with ``numb_steps`` 0 and converts its checkpoint.
    """
    folder = root / f"deepmd-pt-seed{seed}-init"
    path = folder / "model0.dp"
    with _INIT_LOCK:
        if not path.exists():
            write_input(folder, 0, water, seed)
            deepmd = [DEEPMD_PYTHON, "-c", DEEPMD_MAIN]
            run([*deepmd, "--pt", "train", "input.json"], folder, "train.log", env)
            run([*deepmd, "convert-backend", "model.ckpt.pt", "model0.dp"], folder, "convert.log", env)
    return path


def train(root: Path, implementation: str, backend: str, seed: int, steps: int, water: Path,
          threads: int | None, reuse: bool = False, from_deepmd_init: bool = False) -> dict:
    """One training run (``implementation`` ``"dpmodel"`` or ``"deepmd"``), frozen to ``.dp`` and tested.

    With ``reuse``, a folder that already holds the finished run is only tested again. With
    ``from_deepmd_init``, a ``"dpmodel"`` run starts from DeePMD-kit's initial model of the
    same seed (``dp train --init-frz-model``) instead of drawing its own.
    """
    from_deepmd_init = from_deepmd_init and implementation == "dpmodel"
    folder = root / (f"{implementation}-{backend}-seed{seed}" + ("-deepmd-init" if from_deepmd_init else ""))
    name = f"dpmodel --{backend}" if implementation == "dpmodel" else f"DeePMD-kit 3.2.0 --{backend}"
    name += " (from DeePMD-kit's initial model)" if from_deepmd_init else ""
    if reuse and finished(folder, steps):
        test_backend = backend if implementation == "dpmodel" else None
        return {"run": name, "seed": seed, "wall_s": float("nan"),
                "s_per_step": seconds_per_step(folder, "train.log", float("nan"), steps),
                "lcurve_rmse_f_val": last_val_force(folder),
                "test_rmse_f": test_force_rmse(folder / "model.dp", folder, water, test_backend)}
    write_input(folder, steps, water, seed)
    env = dict(os.environ)
    if threads:
        env.update({"OMP_NUM_THREADS": str(threads), "DP_INTRA_OP_PARALLELISM_THREADS": str(threads),
                    "DP_INTER_OP_PARALLELISM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": str(threads),
                    "TF_NUM_INTEROP_THREADS": "1"})
    if implementation == "dpmodel":
        dp = [sys.executable, "-m", "dpmodel.cli"]
        start = ["-f", str(deepmd_initial_model(root, seed, water, env))] if from_deepmd_init else []
        wall = run([*dp, f"--{backend}", "train", "input.json", *start], folder, "train.log", env)
        run([*dp, "freeze", "-o", "model.dp"], folder, "freeze.log", env)
        test_backend = backend
    else:
        env_dp = [DEEPMD_PYTHON, "-c", DEEPMD_MAIN]
        wall = run([*env_dp, f"--{backend}", "train", "input.json"], folder, "train.log", env)
        run([*env_dp, "convert-backend", "model.ckpt.pt", "model.dp"], folder, "convert.log", env)
        test_backend = None
    return {"run": name, "seed": seed, "wall_s": wall, "s_per_step": seconds_per_step(folder, "train.log", wall, steps),
            "lcurve_rmse_f_val": last_val_force(folder), "test_rmse_f": test_force_rmse(folder / "model.dp", folder, water, test_backend)}


def summary(rows: list[dict]) -> list[dict]:
    """Mean test force RMSE per run name over its seeds, and its ratio to DeePMD-kit's mean over the same seeds."""
    names = list(dict.fromkeys(row["run"] for row in rows))
    out = []
    for name in names:
        mine = {r["seed"]: r["test_rmse_f"] for r in rows if r["run"] == name}
        theirs = {r["seed"]: r["test_rmse_f"] for r in rows if r["run"].startswith("DeePMD") and r["seed"] in mine}
        ratio = "" if len(theirs) != len(mine) else statistics.mean(mine.values()) / statistics.mean(theirs.values())
        out.append({"run": name, "seeds": ", ".join(map(str, sorted(mine))),
                    "mean test rmse_f": statistics.mean(mine.values()), "ratio to DeePMD-kit (same seeds)": ratio})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--backends", nargs="+", default=["pt"],
                        help="pt, jax, tf, each optionally with its own seeds (tf:1,2); default seeds: --seeds")
    parser.add_argument("--deepmd", action="store_true", help=f"also train with DeePMD-kit ({DEEPMD_PYTHON}), --pt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each with one thread when > 1")
    parser.add_argument("--reuse", action="store_true", help="only test runs already finished in --workdir")
    parser.add_argument("--from-deepmd-init", nargs="+", default=[], metavar="BACKEND",
                        help="also train these of our backends from DeePMD-kit's initial model of each seed "
                             "(same weights, statistics and energy bias; only the batches differ)")
    parser.add_argument("--data", type=Path, default=WATER, help="the water data (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dpmodel-train-water")
    parser.add_argument("--write-docs", action="store_true",
                        help="also write this section of docs/benchmarks/results.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"needs the water data at {args.data} (../shared/data/water beside the checkout, or --data)")
    seeds_of = {}
    for spec in args.backends:
        name, _, seeds = spec.partition(":")
        if name not in ("pt", "jax", "tf"):
            sys.exit(f"--backends {spec!r}: expected pt, jax or tf, optionally with seeds (tf:1,2)")
        seeds_of[name] = [int(s) for s in seeds.split(",")] if seeds else list(args.seeds)
    plan = []  # seed by seed, DeePMD-kit beside our first backend, so a partial run still compares
    for seed in sorted({s for seeds in seeds_of.values() for s in seeds} | set(args.seeds)):
        backends = [b for b, seeds in seeds_of.items() if seed in seeds]
        plan += [("dpmodel", b, seed) for b in backends[:1]]
        plan += [("deepmd", "pt", seed)] if args.deepmd and seed in args.seeds else []
        plan += [("dpmodel", b, seed) for b in backends[1:]]
        plan += [("dpmodel", b, seed, True) for b in backends if b in args.from_deepmd_init]
    threads = 1 if args.jobs > 1 else None
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda job: train(args.workdir, *job[:3], args.steps, args.data, threads, args.reuse,
                                               *job[3:]), plan))
    columns = {"run": "run", "seed": "seed", "lcurve_rmse_f_val": "rmse_f_val (lcurve)", "test_rmse_f": "test rmse_f",
               "s_per_step": "s/step", "wall_s": "wall s"}
    runs = table([{columns[k]: v for k, v in row.items()} for row in rows], list(columns.values()))
    means = table(summary(rows), ["run", "seeds", "mean test rmse_f", "ratio to DeePMD-kit (same seeds)"])
    print(f"se_e2_r water, {args.steps} steps; force RMSE in eV/Å (test: all 80 frames of data_3)\n")
    print(runs)
    print(means)
    if args.write_docs:
        setting = "one thread per run, runs in parallel" if threads else "default threads"
        body = (f"DeePMD-kit's `examples/water/se_e2_r` input, {args.steps} steps (`data_0..2` train, `data_3` "
                "validates), seeds " + ", ".join(map(str, args.seeds)) + "; force RMSE in eV/Å (test: every frame "
                "of `data_3`, by this project's `dp test`); s/step is the trainer's own average when it prints one, "
                f"else wall time / steps ({setting}). Acceptance: mean test force RMSE at most 1.1x DeePMD-kit's. "
                "Runs marked *from DeePMD-kit's initial model* start from DeePMD-kit's own model before its "
                "first step for that seed (`--from-deepmd-init`): the same weights, statistics and energy bias, "
                "so only the batch order and the arithmetic differ.\n\n"
                + runs + "\n" + means)
        path = write_docs_section("train_water", "Training the se_e2_r water example", body, deepmd=args.deepmd)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
