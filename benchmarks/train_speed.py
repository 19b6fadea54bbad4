"""Training s/step on the water example: every backend here vs DeePMD-kit 3.2.0's, one run.

Usage: ``python benchmarks/train_speed.py [--steps 50 250] [--backends pt jax tf]
[--deepmd-backends pt jax tf] [--later-epochs] [--repeat 3] [--write-docs]``.

Each implementation trains the input of ``train_water.py`` through its real command line
for the larger step count of ``--steps``, with checkpoints only at the end and a display
(learning-curve line with validation on 3 frames) every gcd of the step counts. Both
programs log the wall time of every display interval (ours: ``X s for N steps``;
DeePMD-kit: ``total wall time = X s``); s/step is the sum of the intervals between the
two step counts over their steps. Start-up, statistics and compilation fall before the
first count, so every implementation is timed by the same rule without them. (Timing two
runs of different lengths and taking the difference cancels them too, but the jitter of a
few seconds of start-up and compilation swamped the difference of 200 fast steps.) Batch
size "auto" is one 192-atom frame; each framework uses its default threads and device.
With ``--repeat R`` every implementation is measured once per round for R rounds, ours
right beside DeePMD-kit's of the same framework (which of the two goes first
alternates), so that the machine's slow and fast spells fall on both of a pair; the table
gives medians and the spread.

The three training systems hold 320 frames, so the default steps time the first epoch,
where every frame is new. ``--later-epochs`` times steps 400 to 600 instead (unless
``--steps`` says otherwise), where frames recur as in the rest of a real training (and
our neighbour-list cache serves them), and writes its own section.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import DEEPMD_PYTHON, WATER, table, write_docs_section
from train_water import DEEPMD_MAIN, run, write_input

DEEPMD = "DeePMD-kit 3.2.0"


#: a display interval in our log and in DeePMD-kit's
_OURS = re.compile(r"step (\d+)/\d+: .*; ([\d.]+) s for (\d+) steps")
_THEIRS = re.compile(r"Batch\s+(\d+): total wall time = ([\d.]+) s")


def display_laps(text: str) -> list[tuple[int, float, int]]:
    """``(last step, seconds, steps)`` of every display interval of a training log, ours or DeePMD-kit's."""
    laps, previous = [], 0
    for line in text.splitlines():
        if found := _OURS.search(line):
            laps.append((int(found[1]), float(found[2]), int(found[3])))
        elif found := _THEIRS.search(line):
            last = int(found[1])
            laps.append((last, float(found[2]), last - previous))
            previous = last
    return laps


def seconds_per_step(command: list[str], folder: Path, steps: tuple[int, int]) -> float:
    """Wall time per step from display ``steps[0]`` to ``steps[1]`` of one ``train`` of ``steps[1]`` steps.

    ``type_one_side`` is set to true, what every backend here and DeePMD-kit's PyTorch run
    (DeePMD-kit's JAX refuses its input default, false).
    """
    first, last = steps
    path = write_input(folder, last, WATER)
    config = json.loads(path.read_text())
    config["model"]["descriptor"]["type_one_side"] = True
    config["training"].update({"disp_freq": math.gcd(first, last - first), "save_freq": last})
    path.write_text(json.dumps(config, indent=2))
    run([*command, "train", "input.json"], folder, "train.log")
    log = folder / "train.log"
    laps = [lap for lap in display_laps(log.read_text()) if lap[0] - lap[2] >= first]
    counted = sum(n for _, _, n in laps)
    if counted != last - first:
        sys.exit(f"{log}: the display intervals cover {counted} of the {last - first} steps {first}-{last}")
    return sum(seconds for _, seconds, _ in laps) / counted


def paired_order(runs: list[tuple], round_index: int) -> list[tuple]:
    """``runs`` grouped by framework, ours beside DeePMD-kit's, the pair reversed in odd rounds:
    each pair runs back to back, and neither always has the first turn."""
    frameworks = list(dict.fromkeys(run[0] for run in runs))
    ordered = []
    for framework in frameworks:
        group = [run for run in runs if run[0] == framework]
        ordered += group[::-1] if round_index % 2 else group
    return ordered


def summary(framework: str, who: str, ours: list[float], theirs: list[float] | None, note: str) -> dict:
    """A table row: median s/step, its range over the rounds, and for ours the median over rounds of
    DeePMD-kit's s/step over ours in the same round (paired, so drifts of the machine cancel)."""
    row = {"framework": framework, "implementation": who, "note": note}
    if ours:
        row["s/step"] = float(np.median(ours))
        row["range"] = f"{min(ours):.3g}-{max(ours):.3g}" if len(ours) > 1 else ""
    if who == "ours" and ours and theirs:
        ratios = [t / o for o, t in zip(ours, theirs)]
        row["speed vs DeePMD-kit"] = float(np.median(ratios))
        if len(ratios) > 1:
            row["note"] = (note + "; " if note else "") + "rounds: " + ", ".join(f"{r:.2f}" for r in ratios)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=None, help="default 50 250, or 400 600 with --later-epochs")
    parser.add_argument("--later-epochs", action="store_true", help="time steps after the first epoch (see above)")
    parser.add_argument("--backends", nargs="+", default=["pt", "jax", "tf"])
    parser.add_argument("--deepmd-backends", nargs="*", default=["pt", "jax", "tf"])
    parser.add_argument("--repeat", type=int, default=1, help="rounds of measurements; medians are reported")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "dpmodel-train-speed")
    parser.add_argument("--write-docs", action="store_true", help="also write this section of docs/benchmarks/results.md")
    args = parser.parse_args()
    if not WATER.is_dir():
        sys.exit(f"needs the water data at {WATER} (../shared/data/water beside the checkout)")
    steps = tuple(sorted(args.steps or ([400, 600] if args.later_epochs else [50, 250])))
    ours_cli = [sys.executable, "-m", "dpmodel.cli"]
    theirs_cli = [DEEPMD_PYTHON, "-c", DEEPMD_MAIN]
    runs = [(b, "ours", [*ours_cli, f"--{b}"], args.workdir / f"ours-{b}") for b in args.backends]
    runs += [(b, DEEPMD, [*theirs_cli, f"--{b}"], args.workdir / f"deepmd-{b}") for b in args.deepmd_backends]
    samples: dict[tuple[str, str], list[float]] = {}
    notes: dict[tuple[str, str], str] = {}
    for r in range(args.repeat):  # rounds: every implementation once per round, so slow spells hit all alike
        for framework, who, command, folder in paired_order(runs, r):
            if (framework, who) in notes:
                continue
            try:
                samples.setdefault((framework, who), []).append(seconds_per_step(command, folder, steps))
            except SystemExit:  # a backend DeePMD-kit cannot train here: report its last log line, go on
                log = folder / "train.log"
                last = [line for line in log.read_text().splitlines() if line.strip()][-1] if log.exists() else "failed"
                notes[(framework, who)] = last[:160]
    rows = [summary(framework, who, samples.get((framework, who), []), samples.get((framework, DEEPMD)),
                    notes.get((framework, who), "")) for framework, who, _, _ in runs]
    text = table(rows, ["framework", "implementation", "s/step", "range", "speed vs DeePMD-kit", "note"])
    print(f"training s/step, water (192 atoms, batch 1), steps {steps[0]} to {steps[1]}\n")
    print(text)
    if args.write_docs:
        body = (f"Training the water input of `train_water.py` for {steps[1]} steps; s/step is the wall time "
                f"between the displays at steps {steps[0]} and {steps[1]}, from each program's own log, over "
                f"{steps[1] - steps[0]} (start-up, statistics and compilation come before; each display validates "
                "on 3 frames). Speed vs DeePMD-kit is DeePMD-kit's s/step over ours, same framework"
                f"; {args.repeat} round(s), each implementation once per round: s/step is the median over the "
                "rounds, range its spread, and the speed the median of the rounds' ratios.")
        name, title = "train_speed", "Training speed (first epoch)"
        if args.later_epochs:
            name, title = "train_speed_epochs", "Training speed after the first epoch"
            body += (" The 320 training frames have all been seen by the first of these steps, as in most of a "
                     "real training; our trainer then takes their neighbour lists from its cache.")
        path = write_docs_section(name, title, body + "\n\n" + text, deepmd=bool(args.deepmd_backends))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
