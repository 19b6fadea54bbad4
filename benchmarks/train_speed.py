"""Training s/step on the water example: every backend here vs DeePMD-kit 3.2.0's, one run.

Usage: ``python benchmarks/train_speed.py [--steps 50 250] [--backends pt jax tf]
[--deepmd-backends pt jax tf] [--later-epochs] [--write-docs]``.

Each implementation trains the input of ``train_water.py`` twice through its real command
line, for the two step counts of ``--steps``, with validation and checkpoints only at the
end. s/step is the difference of the two wall times over the difference of the step
counts, so start-up, statistics, compilation and the final validation and save cancel
and every implementation is timed by the same rule. Batch size "auto" is one 192-atom
frame; each framework uses its default threads and device.

The three training systems hold 320 frames, so the default steps time the first epoch,
where every frame is new. ``--later-epochs`` times steps 400 to 600 instead (unless
``--steps`` says otherwise), where frames recur as in the rest of a real training (and
our neighbour-list cache serves them), and writes its own section.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from common import DEEPMD_PYTHON, WATER, table, write_docs_section
from train_water import DEEPMD_MAIN, run, write_input


def wall_time(command: list[str], folder: Path, steps: int) -> float:
    """Wall time of one ``train`` of ``steps`` steps in ``folder``.

    ``type_one_side`` is set to true, what every backend here and DeePMD-kit's PyTorch run
    (DeePMD-kit's JAX refuses its input default, false).
    """
    path = write_input(folder, steps, WATER)
    config = json.loads(path.read_text())
    config["model"]["descriptor"]["type_one_side"] = True
    config["training"].update({"disp_freq": steps, "save_freq": steps})
    path.write_text(json.dumps(config, indent=2))
    return run([*command, "train", "input.json"], folder, "train.log")


def seconds_per_step(command: list[str], root: Path, steps: tuple[int, int]) -> float:
    short, long = (wall_time(command, root / f"{n}", n) for n in steps)
    return (long - short) / (steps[1] - steps[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=None, help="default 50 250, or 400 600 with --later-epochs")
    parser.add_argument("--later-epochs", action="store_true", help="time steps after the first epoch (see above)")
    parser.add_argument("--backends", nargs="+", default=["pt", "jax", "tf"])
    parser.add_argument("--deepmd-backends", nargs="*", default=["pt", "jax", "tf"])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dpmodel-train-speed")
    parser.add_argument("--write-docs", action="store_true", help="also write this section of docs/benchmarks/results.md")
    args = parser.parse_args()
    if not WATER.is_dir():
        sys.exit(f"needs the water data at {WATER} (../shared/data/water beside the checkout)")
    steps = tuple(sorted(args.steps or ([400, 600] if args.later_epochs else [50, 250])))
    ours_cli = [sys.executable, "-m", "dpmodel.cli"]
    theirs_cli = [DEEPMD_PYTHON, "-c", DEEPMD_MAIN]
    rows = []
    for backend in args.backends:
        rows.append({"framework": backend, "implementation": "ours",
                     "s/step": seconds_per_step([*ours_cli, f"--{backend}"], args.workdir / f"ours-{backend}", steps)})
    for backend in args.deepmd_backends:
        try:
            value = seconds_per_step([*theirs_cli, f"--{backend}"], args.workdir / f"deepmd-{backend}", steps)
        except SystemExit:  # a backend DeePMD-kit cannot train here: report its last log line, go on
            logs = sorted((args.workdir / f"deepmd-{backend}").glob("*/train.log"))
            last = [line for line in logs[-1].read_text().splitlines() if line.strip()][-1] if logs else "failed"
            rows.append({"framework": backend, "implementation": "DeePMD-kit 3.2.0", "note": last[:160]})
            continue
        rows.append({"framework": backend, "implementation": "DeePMD-kit 3.2.0", "s/step": value})
    for row in rows:
        theirs = next((r for r in rows if r["framework"] == row["framework"] and r["implementation"] != "ours"
                       and "s/step" in r), None)
        if row["implementation"] == "ours" and theirs is not None:
            row["speed vs DeePMD-kit"] = theirs["s/step"] / row["s/step"]
    text = table(rows, ["framework", "implementation", "s/step", "speed vs DeePMD-kit", "note"])
    print(f"training s/step, water (192 atoms, batch 1), steps {steps[0]} vs {steps[1]}\n")
    print(text)
    if args.write_docs:
        body = (f"Training the water input of `train_water.py` for {steps[0]} and {steps[1]} steps; s/step is the "
                "difference of the wall times over the difference of the steps (start-up, statistics and "
                "compilation cancel). Speed vs DeePMD-kit is DeePMD-kit's s/step over ours, same framework.")
        name, title = "train_speed", "Training speed (first epoch)"
        if args.later_epochs:
            name, title = "train_speed_epochs", "Training speed after the first epoch"
            body += (" The 320 training frames have all been seen by the first of these steps, as in most of a "
                     "real training; our trainer then takes their neighbour lists from its cache.")
        path = write_docs_section(name, title, body + "\n\n" + text, deepmd=bool(args.deepmd_backends))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
