"""Compressed vs uncompressed inference on 192-atom water, every installed backend, one run.

Usage: ``python benchmarks/compress.py [--frames 1 4] [--supercell 2 2 2] [--repeat 5]
[--model water.dp | --neuron 25 50 100] [--backends dpmodel pt] [--write-docs]``.
One water model (``--model``, else the one of ``benchmarks/infer.py``) is compressed
with ``dp compress``'s defaults (``min_nbor_dist`` from ``../shared/data/water/data_0``),
both versions are written in each installed backend's default format and evaluated
through ``DeepPot`` (energy, forces and virial) and ``DeepPot.eval_descriptor``, on 1 and
4 frames and on one frame replicated ``--supercell`` times (1536 atoms by default: a
system of molecular-dynamics size, where ``DeepPot`` on a ``.pth`` file runs the eager
modules instead of the file's program). Prints ms/frame, the speed-up of compression and
the largest differences it causes; ``--write-docs`` also stores them as this script's
section of ``docs/benchmarks/results.md``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import (DEEPMD_PT_OPS_PYTHON, WATER, eager_pot, median_time, supercell, table, water_frames,
                    write_docs_section)
from deepmd_runner import run_deepmd
from dpmodel import io
from dpmodel.compress import compress_model_dict
from dpmodel.data import DeepmdSystem
from dpmodel.infer import DeepPot
from dpmodel.registry import backends, save_model_file
from dpmodel.training.neighbor_stat import neighbor_stat
from infer import water_model


def timings(pots: dict[str, DeepPot], coord, box, atype, frames: list[int], repeat: int,
            big: tuple | None = None) -> dict[str, tuple]:
    """ms/frame of E+F+V per frame count, of the descriptor and, with ``big`` (one frame's
    coord, box, atype), of E+F+V on that larger frame; plain and compressed measured
    alternately (so load on the machine affects both alike); outputs on ``frames[0]`` frames."""
    rows: dict[str, dict] = {name: {} for name in pots}
    tasks = {f"E+F+V {nf} frame": (nf, "eval", (coord, box, atype)) for nf in frames}
    tasks["descriptor"] = (frames[-1], "eval_descriptor", (coord, box, atype))
    if big is not None:
        tasks[big_column(big)] = (1, "eval", big)
    for key, (nf, method, (c, b, t)) in tasks.items():
        calls = {name: (lambda dp=dp: getattr(dp, method)(c[:nf], b[:nf], t)) for name, dp in pots.items()}
        for call in calls.values():  # warm-up (compilation, caches)
            call(), call()
        samples: dict[str, list[float]] = {name: [] for name in pots}
        for _ in range(repeat):
            for name, call in calls.items():
                samples[name].append(median_time(call, repeat=1, warmup=0))
        for name in pots:
            rows[name][key] = 1e3 * float(np.median(samples[name])) / nf
    return {name: (rows[name], dp.eval(coord[: frames[0]], box[: frames[0]], atype)) for name, dp in pots.items()}


def big_column(big: tuple) -> str:
    """Column name of the larger frame: ``E+F+V <natoms> atoms``."""
    return f"E+F+V {big[2].size} atoms"


def big_frame(coord, box, atype, reps: tuple[int, int, int]) -> tuple:
    """The first frame replicated ``reps`` times: coord (1, n, 3), box (1, 9), atype (n,)."""
    c, b, t = supercell(coord[0], box[0], atype, reps)
    return c[None], b[None], t


def seeded_model(neuron: list[int], coord, box, atype) -> dict:
    """A water model file's dict (sel [46, 92], rcut 6) with embedding widths ``neuron``, data
    statistics and the input script DeePMD-kit's compression reads."""
    from dpmodel.descriptor import DescrptSeR
    from dpmodel.fitting import EnergyFitting
    from dpmodel.model import EnergyModel
    from dpmodel.stat import compute_descriptor_stat

    desc = DescrptSeR(6.0, 0.5, [46, 92], neuron, seed=1)
    compute_descriptor_stat(desc, [(coord, np.tile(atype, (len(coord), 1)), box)])
    model = EnergyModel(desc, EnergyFitting(2, neuron[-1], [120, 120, 120], seed=2), ["O", "H"])
    script = {"type_map": ["O", "H"],
              "descriptor": {"type": "se_e2_r", "sel": [46, 92], "rcut": 6.0, "rcut_smth": 0.5, "neuron": neuron},
              "fitting_net": {"neuron": [120, 120, 120]}}
    return {"model": model.serialize(), "model_def_script": script}


DEEPMD_SNIPPET = """
import os, statistics, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from deepmd.dpmodel.entrypoints.compress_common import enable_model_compression
from deepmd.entrypoints.convert_backend import convert_backend
from deepmd.infer import DeepPot
frames = np.load(ARGS["frames_file"])
out = {}
def median_eval(dp, c, b, t):
    for _ in range(2):
        dp.eval(c, b, t)
    times = []
    for _ in range(ARGS["repeat"]):
        s = time.perf_counter(); dp.eval(c, b, t); times.append(time.perf_counter() - s)
    return statistics.median(times)
def timing(path):
    dp = DeepPot(path)
    result = {str(nf): median_eval(dp, frames["coord"][:nf], frames["box"][:nf], frames["atype"]) / nf
              for nf in ARGS["frames"]}
    if "big_coord" in frames:
        result["big"] = median_eval(dp, frames["big_coord"], frames["big_box"], frames["big_atype"])
    return result
for name, suffix, module in (("JAX", ".jax", "deepmd.jax"), ("PyTorch", ".pth", "deepmd.pt")):
    if name not in ARGS["backends"]:
        continue
    plain = os.path.join(ARGS["tmp"], "deepmd-plain" + suffix)
    small = os.path.join(ARGS["tmp"], "deepmd-compressed" + suffix)
    try:
        convert_backend(INPUT=ARGS["model"], OUTPUT=plain)
        if module == "deepmd.jax":
            from deepmd.jax.model.base_model import BaseModel
            from deepmd.jax.utils.serialization import deserialize_to_file, serialize_from_file
            data = serialize_from_file(plain)
            model = BaseModel.deserialize(data["model"])
            enable_model_compression(model, ARGS["min_nbor_dist"], 0.01, 5, -1)
            data = {**data, "model": model.serialize(), "min_nbor_dist": ARGS["min_nbor_dist"]}
            deserialize_to_file(small, data)
        else:
            import torch
            model = torch.jit.load(plain)
            model.min_nbor_dist = torch.tensor(ARGS["min_nbor_dist"], dtype=torch.float64)
            from deepmd.pt.entrypoints.compress import enable_compression
            torch.jit.save(model, plain)
            enable_compression(plain, small, 0.01, 5, -1)
        out[name] = {"plain": timing(plain), "compressed": timing(small)}
    except Exception as err:  # a model DeePMD-kit cannot compress or run here
        out[name] = {"error": f"{type(err).__name__}: {err}"[:200]}
print(json.dumps(out))
"""


def result_keys(frames: list[int], big: tuple | None) -> dict[str, str]:
    """Table column -> key of DeePMD-kit's timing results, for every E+F+V case."""
    keys = {f"E+F+V {nf} frame": str(nf) for nf in frames}
    if big is not None:
        keys[big_column(big)] = "big"
    return keys


def deepmd_rows(model: Path, tmp: Path, coord, box, atype, frames: list[int], repeat: int, distance: float,
                big: tuple | None = None) -> list[dict]:
    """DeePMD-kit 3.2.0's plain and compressed JAX and PyTorch models, timed in its own interpreters.

    JAX in DeePMD-kit's usual virtualenv; PyTorch in the one whose torch matches DeePMD-kit's
    custom operators (:data:`common.DEEPMD_PT_OPS_PYTHON`), which its compressed models call.
    """
    extra = {} if big is None else dict(big_coord=big[0], big_box=big[1], big_atype=big[2])
    np.savez(tmp / "frames.npz", coord=coord, box=box, atype=atype, **extra)
    common = dict(model=str(model), tmp=str(tmp), frames_file=str(tmp / "frames.npz"), frames=frames, repeat=repeat,
                  min_nbor_dist=distance)
    theirs = run_deepmd(DEEPMD_SNIPPET, backends=["JAX"], **common) or {}
    if Path(DEEPMD_PT_OPS_PYTHON).exists():
        theirs.update(run_deepmd(DEEPMD_SNIPPET, python=DEEPMD_PT_OPS_PYTHON, custom_ops=True, backends=["PyTorch"],
                                 **common) or {})
    else:
        theirs["PyTorch"] = {"error": f"no virtualenv with DeePMD-kit's PyTorch custom operators at "
                                      f"{DEEPMD_PT_OPS_PYTHON} (docs/benchmarks.md)"}
    rows, keys = [], result_keys(frames, big)
    for name, result in theirs.items():
        if "error" in result:
            rows.append({"backend": f"DeePMD-kit 3.2.0 {name} compressed", "note": result["error"]})
            continue
        for kind in ("plain", "compressed"):
            rows.append({"backend": f"DeePMD-kit 3.2.0 {name} {kind}",
                         **{column: 1e3 * result[kind][key] for column, key in keys.items()}})
        speed = {column: result["plain"][key] / result["compressed"][key] for column, key in keys.items()}
        rows.append({"backend": f"DeePMD-kit 3.2.0 {name} speed-up", **speed})
    return rows


def versus_deepmd(rows: list[dict], keys: list[str]) -> list[dict]:
    """Speed of each of our compressed models over DeePMD-kit's compressed PyTorch model (its ms over ours)."""
    theirs = next((r for r in rows if r["backend"] == "DeePMD-kit 3.2.0 PyTorch compressed"), None)
    if theirs is None:
        return []
    return [{"backend": f"{r['backend']}: speed vs DeePMD-kit PyTorch compressed",
             **{k: theirs[k] / r[k] for k in keys if r.get(k)}}
            for r in rows if r["backend"].endswith(" compressed") and not r["backend"].startswith("DeePMD")]


def comparison_rows(label: str, measured: dict[str, tuple], natoms: int) -> list[dict]:
    """Plain, compressed and speed-up rows of one implementation; the note gives the largest differences."""
    (base, ref), (fast, out) = measured["plain"], measured["compressed"]
    rows = [{"backend": f"{label} {name}", **row} for name, row in (("plain", base), ("compressed", fast))]
    diffs = {"max dE/atom": float(np.abs(out[0] - ref[0]).max()) / natoms,
             "max dF": float(np.abs(out[1] - ref[1]).max()), "max dV": float(np.abs(out[2] - ref[2]).max())}
    rows.append({"backend": f"{label} speed-up", **{k: base[k] / fast[k] for k in base},
                 "note": ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--backends", nargs="+", default=None, help="backend names (default: all installed)")
    parser.add_argument("--neuron", type=int, nargs="+", default=None,
                        help="embedding widths of a seeded water model instead of the default model (e.g. 25 50 100)")
    parser.add_argument("--supercell", type=int, nargs=3, default=[2, 2, 2],
                        help="also time one frame replicated this many times (1 1 1: not at all)")
    parser.add_argument("--write-docs", action="store_true",
                        help="also write this section of docs/benchmarks/results.md")
    args = parser.parse_args()
    coord, box, atype = water_frames(max(args.frames))
    big = big_frame(coord, box, atype, tuple(args.supercell)) if np.prod(args.supercell) > 1 else None
    distance = neighbor_stat([DeepmdSystem(WATER / "data_0", ["O", "H"])], 6.0, 2).min_dist
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.neuron:
            data = seeded_model(args.neuron, coord, box, atype)
        else:
            data = io.load(args.model or water_model(tmp / "water.dp", coord, box, atype))
        plain = {"model": data["model"], "model_def_script": data.get("model_def_script")}
        small = {**plain, "model": compress_model_dict(data["model"], distance),
                 "@variables": {"min_nbor_dist": distance}}
        for info in backends().values():
            if not info.available() or (args.backends and info.name not in args.backends):
                continue
            suffix = info.suffixes[0]
            paths = {name: tmp / f"{name}{suffix}" for name in ("plain", "compressed")}
            variants = {f"{info.name} ({suffix})": (DeepPot, big)}
            if info.name == "pt":  # at 192 atoms DeepPot runs the file's TorchScript program; the eager modules
                # too (DeepPot's choice above backends.pt.io.PROGRAM_MAX_ATOMS, so the larger frame is the same)
                variants[f"pt ({suffix}, eager modules)"] = (eager_pot, None)
            for label, (make_pot, larger) in variants.items():
                try:
                    for name, model in (("plain", plain), ("compressed", small)):
                        save_model_file(paths[name], model)
                    measured = timings({name: make_pot(path) for name, path in paths.items()},
                                       coord, box, atype, args.frames, args.repeat, larger)
                except Exception as err:  # report, keep benchmarking the others
                    rows.append({"backend": label, "note": f"{type(err).__name__}: {err}"[:120]})
                    continue
                rows += comparison_rows(label, measured, atype.size)
        model_path = tmp / "plain.dp"
        io.save(model_path, plain)
        rows += deepmd_rows(model_path, tmp, coord, box, atype, args.frames, args.repeat, distance, big)
        rows += versus_deepmd(rows, list(result_keys(args.frames, big)))
    columns = ["backend", *result_keys(args.frames, big), "descriptor", "note"]
    model = (f"a seeded se_e2_r model, embedding nets {args.neuron}, fitting net [120, 120, 120]" if args.neuron
             else "the water model of `infer.py`")
    size = "" if big is None else f" and one {big[2].size}-atom frame ({' x '.join(map(str, args.supercell))} supercell)"
    intro = (f"192-atom water{size}, {model}; min_nbor_dist {distance:.4f} Å, step 0.01, extrapolate 5; ms/frame "
             "(speed-up rows: plain / compressed)")
    print(intro)
    print(table(rows, columns))
    if args.write_docs:
        body = (f"{intro}; median of {args.repeat} alternating runs after 2 warm-up calls, "
                f"through `DeepPot`.\n\n{table(rows, columns)}")
        name, title = "compress", "Compressed vs plain models"
        if args.neuron:
            name, title = "compress_wide", f"Compressed vs plain models, embedding nets {args.neuron}"
        print(f"wrote {write_docs_section(name, title, body, script='compress')}")


if __name__ == "__main__":
    main()
