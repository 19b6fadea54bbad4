"""Energy + force + virial of 192-atom water: every backend here vs DeePMD-kit 3.2.0.

Usage: ``python benchmarks/infer.py [--frames 1 10] [--model water.dp]``. One model file
(DeePMD-kit's reference water model when present, else a seeded model with the same
sizes) is converted to each installed backend's format and evaluated through
``DeepPot``; DeePMD-kit evaluates the same model with its PyTorch, JAX and TensorFlow
backends in a subprocess of its own virtualenv during the same run. Prints ms/frame and
the ratio to DeePMD-kit's fastest backend.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import REPO, median_time, run_deepmd, table, water_frames
from dpmodel import io
from dpmodel.infer import DeepPot
from dpmodel.registry import backends, save_model_file

REFERENCE_MODEL = REPO / "tests" / "reference" / "data" / "model" / "water_pbc" / "model.dp"

DEEPMD_SNIPPET = """
import os, statistics, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from deepmd.entrypoints.convert_backend import convert_backend
from deepmd.infer import DeepPot
frames = np.load(ARGS["frames_file"])
out = {}
for name, suffix in (("PyTorch", ".pth"), ("JAX", ".hlo"), ("TensorFlow", ".pb")):
    path = os.path.join(ARGS["tmp"], "deepmd" + suffix)
    try:
        convert_backend(INPUT=ARGS["model"], OUTPUT=path)
        dp = DeepPot(path)
    except Exception as err:  # a backend DeePMD-kit cannot build here
        out[name] = {"error": f"{type(err).__name__}: {err}"[:200]}
        continue
    result = {}
    for nf in ARGS["frames"]:
        c, b, t = frames["coord"][:nf], frames["box"][:nf], frames["atype"]
        for _ in range(2):
            e, f, v = dp.eval(c, b, t)
        times = []
        for _ in range(ARGS["repeat"]):
            s = time.perf_counter(); dp.eval(c, b, t); times.append(time.perf_counter() - s)
        result[str(nf)] = {"seconds": statistics.median(times), "energy": e.ravel().tolist(), "force": f.tolist()}
    out[name] = result
print(json.dumps(out))
"""


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


def ours(model: Path, tmp: Path, coord, box, atype, frames: list[int], repeat: int) -> list[dict]:
    """ms/frame of each installed backend here."""
    rows = []
    data = io.load(model)
    for info in backends().values():
        if not info.available():
            continue
        path = tmp / f"ours{info.suffixes[0]}"
        try:
            save_model_file(path, data)
            dp = DeepPot(path)
        except Exception as err:  # report, keep benchmarking the others
            rows.append({"implementation": f"ours: {info.name}", "note": f"{type(err).__name__}: {err}"[:120]})
            continue
        row = {"implementation": f"ours: {info.name} ({info.suffixes[0]})"}
        for nf in frames:
            seconds = median_time(lambda: dp.eval(coord[:nf], box[:nf], atype), repeat)
            row[f"{nf} frame ms/frame"] = 1e3 * seconds / nf
        row["energy"] = dp.eval(coord[:1], box[:1], atype)[0][0, 0]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    coord, box, atype = water_frames(max(args.frames))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or water_model(tmp / "water.dp", coord, box, atype)
        rows = ours(model, tmp, coord, box, atype, args.frames, args.repeat)
        np.savez(tmp / "frames.npz", coord=coord, box=box, atype=atype)
        theirs = run_deepmd(DEEPMD_SNIPPET, model=str(model), tmp=str(tmp), frames_file=str(tmp / "frames.npz"),
                            frames=args.frames, repeat=args.repeat) or {}
    for name, result in theirs.items():
        row = {"implementation": f"DeePMD-kit 3.2.0: {name}"}
        if "error" in result:
            row["note"] = result["error"]
        else:
            for nf in args.frames:
                row[f"{nf} frame ms/frame"] = 1e3 * result[str(nf)]["seconds"] / nf
            row["energy"] = result[str(args.frames[0])]["energy"][0]
        rows.append(row)
    columns = ["implementation", *[f"{nf} frame ms/frame" for nf in args.frames], "energy", "note"]
    print(table(rows, columns))
    deepmd = [r for r in rows if r["implementation"].startswith("DeePMD") and "note" not in r]
    if deepmd:
        for nf in args.frames:
            key = f"{nf} frame ms/frame"
            best = min(deepmd, key=lambda r: r[key])
            print(f"\n{nf} frame(s): DeePMD-kit's fastest is {best['implementation']} at {best[key]:.3g} ms/frame")
            for r in rows:
                if r["implementation"].startswith("ours") and key in r:
                    print(f"  {r['implementation']}: {r[key]:.3g} ms/frame, {best[key] / r[key]:.2f}x DeePMD-kit's speed")


if __name__ == "__main__":
    main()
