"""Energy + force + virial of 192-atom water: every backend here vs DeePMD-kit 3.2.0.

Usage: ``python benchmarks/infer.py [--frames 1 10] [--repeat 5] [--rounds 1] [--model water.dp]
[--write-docs]``. One model file
(DeePMD-kit's reference water model when present, else a seeded model with the same
sizes) is converted to each installed backend's format and evaluated through
``DeepPot``; DeePMD-kit evaluates the same model with its PyTorch, JAX and TensorFlow
backends in subprocesses of its own virtualenv that stay loaded during the run. With
``--rounds R`` every implementation is timed once per round, R rounds, each of ours right
beside DeePMD-kit's backend of the same framework, and compared with it within the round
(paired within seconds, so drifts of the machine's speed cancel). Prints ms/frame, the paired speed and the ratio to DeePMD-kit's
fastest backend; ``--write-docs`` also stores them as this
script's section of ``docs/benchmarks/results.md`` (see ``common.py``).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common import (REPO, eager_pot, median_time, table, tuned_malloc_env, water_frames,
                    write_docs_section)
from deepmd_runner import DeepmdServer
from dpmodel import io
from dpmodel.infer import DeepPot
from dpmodel.registry import backends, save_model_file

REFERENCE_MODEL = REPO / "tests" / "reference" / "data" / "model" / "water_pbc" / "model.dp"

def water_model(path: Path, coord, box, atype) -> Path:
    """The reference water model, or a seeded one with the same sizes and data statistics."""
    if REFERENCE_MODEL.exists():
        return REFERENCE_MODEL
    from dpmodel.descriptor import DescrptSeR
    from dpmodel.fitting import EnergyFitting
    from dpmodel.model import EnergyModel
    from dpmodel.stat import compute_descriptor_stat

    desc = DescrptSeR(6.0, 0.5, [46, 92], [5, 10, 20], seed=1)
    compute_descriptor_stat(desc, [(coord, np.tile(atype, (len(coord), 1)), box)])
    model = EnergyModel(desc, EnergyFitting(2, 20, [120, 120, 120], seed=2), ["O", "H"])
    script = {"type_map": ["O", "H"],
              "descriptor": {"type": "se_e2_r", "sel": [46, 92], "rcut": 6.0, "rcut_smth": 0.5, "neuron": [5, 10, 20]},
              "fitting_net": {"neuron": [120, 120, 120]}}
    io.save(path, {"model": model.serialize(), "model_def_script": script})
    return path


def our_pots(model: Path, tmp: Path, only: list[str] | None = None) -> Iterator[tuple[str, str, DeepPot | str]]:
    """``(backend name, label, DeepPot or error note)`` for each installed backend here (or
    those named in ``only``), reading ``model`` written in that backend's default format."""
    data = io.load(model)
    for info in backends().values():
        if not info.available() or (only and info.name not in only):
            continue
        suffix = info.suffixes[0]
        path = tmp / f"ours{suffix}"
        label = f"ours: {info.name} ({suffix})"
        try:
            save_model_file(path, data)
            dp = DeepPot(path)
        except Exception as err:  # report, keep benchmarking the others
            yield info.name, label, f"{type(err).__name__}: {err}"[:120]
            continue
        yield info.name, label, dp
        if info.name == "pt":  # DeepPot runs the file's TorchScript program at this size; also the eager modules
            yield info.name, f"ours: pt ({suffix}, eager modules)", eager_pot(path)


#: DeePMD-kit's name of each backend here that it also has
DEEPMD_FRAMEWORK = {"pt": "PyTorch", "jax": "JAX", "tf": "TensorFlow"}


def time_pot(dp: DeepPot, coord, box, atype, frames: list[int], repeat: int) -> dict[int, float]:
    """ms/frame of ``dp`` for each frame count."""
    return {nf: 1e3 * median_time(lambda: dp.eval(coord[:nf], box[:nf], atype), repeat) / nf for nf in frames}


def measure(model: Path, tmp: Path, coord, box, atype, frames: list[int], repeat: int, rounds: int):
    """Per implementation: its DeePMD-kit counterpart (or None), ms/frame of every round per frame
    count, energy of the first frame and a note.

    DeePMD-kit's backends stay loaded in subprocesses of its own virtualenv
    (:class:`deepmd_runner.DeepmdServer`; one more with our malloc thresholds for its PyTorch). Every
    implementation is timed once per round, and each of ours right beside its DeePMD-kit
    counterpart (first in even rounds, second in odd ones), so the pair sees the same machine
    speed within seconds.
    """
    found: dict[str, dict] = {}

    def entry(label: str, counterpart: str | None) -> dict:
        return found.setdefault(label, {"counterpart": counterpart, "ms": {nf: [] for nf in frames},
                                        "energy": None, "note": ""})

    pots = list(our_pots(model, tmp))
    systems = {str(nf): (coord[:nf], box[:nf], atype) for nf in frames}
    servers = {"": DeepmdServer(model, tmp, systems),
               # the same glibc thresholds as ours (DP_MALLOC_TUNING) given to DeePMD-kit's PyTorch, for comparison
               " (our malloc thresholds)": DeepmdServer(model, tmp, systems, backends=("PyTorch",),
                                                        env=tuned_malloc_env(), tag="tuned")}
    for suffix, server in servers.items():
        for name, status in server.status.items():
            entry(f"DeePMD-kit 3.2.0: {name}{suffix}", None)["note"] = "" if status == "ok" else status

    def time_theirs(name: str, suffix: str = "") -> None:
        result = servers[suffix].time(name, repeat)
        if result is None:
            return
        item = entry(f"DeePMD-kit 3.2.0: {name}{suffix}", None)
        for nf in frames:
            item["ms"][nf].append(1e3 * result[str(nf)]["seconds"] / nf)
        item["energy"] = result[str(frames[0])]["energy"][0]

    try:
        for r in range(rounds):
            timed: set[str] = set()
            for name, label, dp in pots:
                framework = DEEPMD_FRAMEWORK.get(name)
                item = entry(label, f"DeePMD-kit 3.2.0: {framework}" if framework else None)
                if isinstance(dp, str):
                    item["note"] = dp
                    continue
                pair = framework if framework and framework not in timed else None
                if pair and r % 2:
                    time_theirs(pair)
                for nf, ms in time_pot(dp, coord, box, atype, frames, repeat).items():
                    item["ms"][nf].append(ms)
                item["energy"] = dp.eval(coord[:1], box[:1], atype)[0][0, 0]
                if pair and not r % 2:
                    time_theirs(pair)
                if pair:
                    timed.add(pair)
            for name in servers[""].status:
                if name not in timed:
                    time_theirs(name)
            time_theirs("PyTorch", " (our malloc thresholds)")
    finally:
        for server in servers.values():
            server.close()
    return found


def rows_of(found: dict[str, dict], frames: list[int]) -> list[dict]:
    """Table rows: median ms/frame over the rounds and, where DeePMD-kit has the same framework,
    the median over the rounds of its ms/frame over ours in the same round (the rounds' ratios in the note)."""
    rows = []
    for label, item in found.items():
        row = {"implementation": label, "energy": item["energy"], "note": item["note"]}
        theirs = found.get(item["counterpart"] or "", {}).get("ms")
        paired = []
        for nf in frames:
            ours = item["ms"][nf]
            if not ours:
                continue
            row[f"{nf} frame ms/frame"] = float(np.median(ours))
            if theirs and len(theirs[nf]) == len(ours):
                ratios = [t / o for o, t in zip(ours, theirs[nf])]
                row[f"{nf} frame speed"] = float(np.median(ratios))
                paired.append(f"{nf} frame " + ", ".join(f"{r:.2f}" for r in ratios))
        if paired and len(item["ms"][frames[0]]) > 1:
            row["note"] = "; ".join([*([item["note"]] if item["note"] else []), "rounds: " + "; ".join(paired)])
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of measurements, every implementation once per round")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--write-docs", action="store_true",
                        help="also write this section of docs/benchmarks/results.md")
    args = parser.parse_args()
    coord, box, atype = water_frames(max(args.frames))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or water_model(tmp / "water.dp", coord, box, atype)
        rows = rows_of(measure(model, tmp, coord, box, atype, args.frames, args.repeat, args.rounds), args.frames)
    columns = ["implementation", *[f"{nf} frame ms/frame" for nf in args.frames],
               *[f"{nf} frame speed" for nf in args.frames], "energy", "note"]
    lines = [table(rows, columns)]
    deepmd = [r for r in rows if r["implementation"].startswith("DeePMD") and f"{args.frames[0]} frame ms/frame" in r]
    if deepmd:
        for nf in args.frames:
            key = f"{nf} frame ms/frame"
            best = min(deepmd, key=lambda r: r[key])
            lines.append(f"\n{nf} frame(s): DeePMD-kit's fastest is {best['implementation']} "
                         f"at {best[key]:.3g} ms/frame\n")
            for r in rows:
                if r["implementation"].startswith("ours") and key in r:
                    lines.append(f"- {r['implementation']}: {r[key]:.3g} ms/frame, "
                                 f"{best[key] / r[key]:.2f}x DeePMD-kit's fastest")
    print("\n".join(lines))
    if args.write_docs:
        intro = (f"Energy, forces and virial of the 192-atom water frames of `data_0` through `DeepPot.eval`, "
                 f"median of {args.repeat} runs after 2 warm-up calls, ms per frame; DeePMD-kit on the CPU "
                 f"in subprocesses of its own virtualenv, loaded once for the whole run. {args.rounds} round(s), "
                 "every implementation once per round, each of ours right beside DeePMD-kit's backend of the "
                 "same framework (PyTorch, JAX, TensorFlow): ms/frame is the median over the rounds, and "
                 "`speed` the median over the rounds of DeePMD-kit's ms/frame over ours in the same round.\n\n")
        path = write_docs_section("infer", "Inference: every backend vs DeePMD-kit", intro + "\n".join(lines),
                                  deepmd=True)
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
