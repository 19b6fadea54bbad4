"""Energy + force + virial time against the number of atoms: every backend here vs DeePMD-kit 3.2.0.

Usage: ``python benchmarks/scaling.py [--cells 1x1x1 2x1x1 2x2x1 2x2x2] [--repeat 5] [--model water.dp]
[--backends dpmodel pt] [--plot scaling.png] [--write-docs]``.

The first 192-atom water frame of ``../shared/data/water/data_0`` is replicated into
supercells (coordinates tiled with the lattice vectors, types tiled, cell scaled:
192, 384, 768 and 1536 atoms by default). The model of ``benchmarks/infer.py`` is written
in each installed backend's default format and evaluated through ``DeepPot``, one frame
per call; DeePMD-kit evaluates the same model and frames with its PyTorch, JAX and
TensorFlow backends (on the CPU) in a subprocess of its own virtualenv during the same run.
Every time is the median of ``--repeat`` calls after 2 warm-up calls.

Prints a Markdown table of ms/frame per backend and atom count and writes a log-log plot
(time against atoms, one line per backend: ours solid, DeePMD-kit dashed) to ``--plot``
(default ``scaling.png`` in the current folder). ``--write-docs`` writes the plot as
``docs/benchmarks/scaling.png`` and the table as this script's section of
``docs/benchmarks/results.md`` instead (see ``common.py``).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import atomic_write, median_time, supercell, table, water_frames, write_docs_section
from deepmd_runner import deepmd_eval
from infer import our_pots, water_model

CELLS = ["1x1x1", "2x1x1", "2x2x1", "2x2x2"]
PLOT_NAME = "scaling.png"
#: one colour per framework, shared by our backend and DeePMD-kit's backend of that framework
COLOURS = {"dpmodel": "tab:gray", "pt": "tab:red", "jax": "tab:green", "tf": "tab:orange"}
DEEPMD_FRAMEWORK = {"PyTorch": "pt", "JAX": "jax", "TensorFlow": "tf"}


def parse_cell(text: str) -> tuple[int, int, int]:
    """``"2x2x1"`` -> ``(2, 2, 1)``."""
    try:
        reps = tuple(int(n) for n in text.lower().split("x"))
    except ValueError:
        reps = ()
    if len(reps) != 3 or min(reps) < 1:
        raise argparse.ArgumentTypeError(f"cell {text!r} is not three positive integers like 2x2x1")
    return reps  # type: ignore[return-value]


def systems(cells: list[tuple[int, int, int]]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{natoms: (coord (1, natoms, 3), box (1, 9), atype (natoms,))}`` of each supercell."""
    coord, box, atype = water_frames(1)
    out = {}
    for reps in cells:
        c, b, t = supercell(coord[0], box[0], atype, reps)
        out[len(t)] = (c[None], b[None], t)
    return out


def column(natoms: int) -> str:
    return f"{natoms} atoms"


def row_of(label: str, framework: str, ours: bool, seconds: dict[int, float], energy: dict[int, float]) -> dict:
    """A table row: ms/frame per atom count, and the largest change of energy per atom between
    supercells (replicas of one periodic frame: zero up to rounding)."""
    row = {"implementation": label, "framework": framework, "ours": ours,
           "ms": {n: 1e3 * s for n, s in seconds.items()}}
    row.update({column(n): 1e3 * s for n, s in seconds.items()})
    per_atom = [e / n for n, e in energy.items()]
    if per_atom:
        row["max ΔE/atom (eV)"] = float(max(per_atom) - min(per_atom))
    return row


def measure_ours(model: Path, tmp: Path, frames: dict, repeat: int, only: list[str] | None) -> list[dict]:
    rows = []
    for name, label, dp in our_pots(model, tmp, only):
        if isinstance(dp, str):
            rows.append({"implementation": label, "framework": name, "ours": True, "note": dp})
            continue
        seconds, energy = {}, {}
        for natoms, (c, b, t) in frames.items():
            seconds[natoms] = median_time(lambda: dp.eval(c, b, t), repeat)
            energy[natoms] = float(np.ravel(dp.eval(c, b, t)[0])[0])
            print(f"  {label}: {natoms} atoms {1e3 * seconds[natoms]:.3g} ms", file=sys.stderr)
        rows.append(row_of(label, name, True, seconds, energy))
    return rows


def measure_deepmd(model: Path, tmp: Path, frames: dict, repeat: int) -> list[dict]:
    rows = []
    theirs = deepmd_eval(model, tmp, {str(n): f for n, f in frames.items()}, repeat)
    for name, result in theirs.items():
        label, framework = f"DeePMD-kit 3.2.0: {name}", DEEPMD_FRAMEWORK.get(name, name)
        if "error" in result:
            rows.append({"implementation": label, "framework": framework, "ours": False, "note": result["error"]})
            continue
        rows.append(row_of(label, framework, False, {n: result[str(n)]["seconds"] for n in frames},
                           {n: result[str(n)]["energy"][0] for n in frames}))
    return rows


def plot(rows: list[dict], path: Path, title: str = "192-atom water supercells, energy + forces + virial") -> Path:
    """Log-log ms/frame against atoms, one line per row with timings (ours solid, DeePMD-kit
    dashed), written atomically to ``path`` with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, NullLocator

    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    timed = [r for r in rows if r.get("ms")]
    for row in timed:
        natoms = sorted(row["ms"])
        ax.plot(natoms, [row["ms"][n] for n in natoms], linestyle="-" if row["ours"] else "--",
                marker="o" if row["ours"] else "s", color=COLOURS.get(row["framework"]),
                label=row["implementation"])
    if timed:  # a line proportional to the number of atoms through the fastest first point
        natoms = sorted({n for r in timed for n in r["ms"]})
        start = min(r["ms"][natoms[0]] for r in timed if natoms[0] in r["ms"])
        ax.plot(natoms, [start * n / natoms[0] for n in natoms], ":", color="black", alpha=0.4,
                label="∝ atoms")
        ax.set_xticks(natoms, [str(n) for n in natoms])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("atoms")
    ax.set_ylabel("ms / frame")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        fig.savefig(out, dpi=120)
        atomic_write(path, out.read_bytes())
    return path


def markdown(rows: list[dict], natoms: list[int]) -> str:
    """The table of ms/frame, and each backend's ratio to DeePMD-kit's fastest at every size."""
    columns = ["implementation", *[column(n) for n in natoms], "max ΔE/atom (eV)", "note"]
    text = table(rows, columns)
    deepmd = [r for r in rows if not r["ours"] and r.get("ms")]
    ours = [r for r in rows if r["ours"] and r.get("ms")]
    if deepmd and ours:
        best = {n: min(r["ms"][n] for r in deepmd) for n in natoms}
        ratios = [{"implementation": r["implementation"],
                   **{column(n): best[n] / r["ms"][n] for n in natoms}} for r in ours]
        text += ("\nSpeed relative to DeePMD-kit's fastest backend at each size (above 1: faster):\n\n"
                 + table(ratios, ["implementation", *[column(n) for n in natoms]]))
    return text


def slopes(rows: list[dict]) -> str:
    """Fitted exponent of time against atoms per backend (1: linear)."""
    parts = []
    for row in rows:
        if row.get("ms") and len(row["ms"]) > 1:
            n = np.log(sorted(row["ms"]))
            t = np.log([row["ms"][k] for k in sorted(row["ms"])])
            parts.append(f"{row['implementation']} {np.polyfit(n, t, 1)[0]:.2f}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=parse_cell, nargs="+", default=[parse_cell(c) for c in CELLS],
                        help="supercells of the 192-atom frame (default: %s)" % " ".join(CELLS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--backends", nargs="+", default=None, help="backend names here (default: all installed)")
    parser.add_argument("--no-deepmd", action="store_true", help="skip DeePMD-kit")
    parser.add_argument("--plot", type=Path, default=None, help=f"the plot (default: ./{PLOT_NAME})")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"write docs/benchmarks/{PLOT_NAME} and this section of docs/benchmarks/results.md")
    args = parser.parse_args()
    frames = systems(args.cells)
    if len(frames) != len(args.cells):
        parser.error("two --cells give the same number of atoms")
    natoms = sorted(frames)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        coord, box, atype = water_frames(1)
        model = args.model or water_model(tmp / "water.dp", coord, box, atype)
        rows = measure_ours(model, tmp, frames, args.repeat, args.backends)
        if not args.no_deepmd:
            rows += measure_deepmd(model, tmp, frames, args.repeat)
        text = markdown(rows, natoms)
        print(f"water supercells {' '.join('x'.join(map(str, c)) for c in args.cells)}: ms/frame, one frame "
              f"per call, median of {args.repeat}\n")
        print(text)
        fit = slopes(rows)
        if fit:
            print(f"fitted exponent of time vs atoms: {fit}")
        if args.plot or not args.write_docs:
            print(f"wrote {plot(rows, args.plot or Path(PLOT_NAME))}")
        if args.write_docs:
            png = plot(rows, tmp / PLOT_NAME)
            cells = ", ".join(f"{'x'.join(map(str, c))} ({math.prod(c) * len(atype)} atoms)" for c in args.cells)
            body = (f"Energy, forces and virial of one frame through `DeepPot.eval`: the first 192-atom water "
                    f"frame of `data_0` replicated into supercells {cells}; ms per frame, median of "
                    f"{args.repeat} calls after 2 warm-up calls. Each backend here reads the model in its default "
                    "format; DeePMD-kit runs on the CPU in a subprocess of its own virtualenv during the same "
                    "run. `max ΔE/atom` is the largest difference of energy per atom between the supercells "
                    "(replicas of one periodic frame, so zero up to rounding).\n\n"
                    f"![ms per frame against number of atoms, log-log]({PLOT_NAME})\n\n{text}"
                    + (f"\nFitted exponent of time against atoms: {fit}.\n" if fit else ""))
            path = write_docs_section("scaling", "Inference time against the number of atoms", body,
                                      files={PLOT_NAME: png}, deepmd=not args.no_deepmd)
            print(f"wrote {path} and {path.parent / PLOT_NAME}")


if __name__ == "__main__":
    main()
