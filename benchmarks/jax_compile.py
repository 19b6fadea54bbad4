"""JAX: one-off compile time and compilations over a 100-frame water trajectory.

Usage: ``python benchmarks/jax_compile.py [--frames 100]``. The water model of
``benchmarks/infer.py`` is written as ``.jax`` and ``.hlo``; each is loaded in a fresh
``DeepPot`` and evaluated frame by frame (energy, forces, virial) over ``--frames`` frames of
``../shared/data/water`` (``data_0`` then ``data_1``: two systems, two cells). Reported:
the first call (tracing + XLA compilation + run), the median of the later calls, and how
many times the program was traced (``backends.jax.model.TRACES``; ``.hlo`` files are
compiled by XLA once per input shape). DeePMD-kit 3.2.0's JAX model is timed the same way
in its own interpreter.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from common import table, water_frames, write_docs_section
from deepmd_runner import run_deepmd
from dpmodel import io
from dpmodel.infer import DeepPot
from dpmodel.registry import save_model_file
from infer import water_model

DEEPMD_SNIPPET = """
import os, statistics, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from deepmd.entrypoints.convert_backend import convert_backend
from deepmd.infer import DeepPot
frames = np.load(ARGS["frames_file"])
out = {}
for suffix in (".hlo", ".jax"):
    path = os.path.join(ARGS["tmp"], "deepmd" + suffix)
    try:
        convert_backend(INPUT=ARGS["model"], OUTPUT=path)
        start = time.perf_counter()
        dp = DeepPot(path)
        load = time.perf_counter() - start
        times = []
        for k in range(len(frames["coord"])):
            s = time.perf_counter()
            dp.eval(frames["coord"][k:k + 1], frames["box"][k:k + 1], frames["atype"])
            times.append(time.perf_counter() - s)
        out[suffix] = {"load": load, "first": times[0],
                       "steady": statistics.median(times[1:])}
    except Exception as err:
        out[suffix] = {"error": f"{type(err).__name__}: {err}"[:200]}
print(json.dumps(out))
"""


def trajectory(nframes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``nframes`` water frames from data_0 followed by data_1."""
    c0, b0, t0 = water_frames(nframes, "data_0")
    rest = nframes - len(c0)
    if rest <= 0:
        return c0, b0, t0
    c1, b1, _ = water_frames(rest, "data_1")
    return np.concatenate([c0, c1]), np.concatenate([b0, b1]), t0


def ours(model: Path, tmp: Path, coord, box, atype) -> list[dict]:
    from backends.jax.model import TRACES

    data = io.load(model)
    rows = []
    for suffix in (".jax", ".hlo"):
        path = tmp / f"ours{suffix}"
        save_model_file(path, data)
        before = sum(TRACES.values())
        start = time.perf_counter()
        dp = DeepPot(path)
        load = time.perf_counter() - start
        times = []
        for k in range(len(coord)):
            start = time.perf_counter()
            dp.eval(coord[k:k + 1], box[k:k + 1], atype)
            times.append(time.perf_counter() - start)
        rows.append({"model": f"ours {suffix}", "load s": load, "first call s": times[0],
                     "later calls ms (median)": 1e3 * statistics.median(times[1:]),
                     "traces": sum(TRACES.values()) - before})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--write-docs", action="store_true", help="also write this section of docs/benchmarks/results.md")
    args = parser.parse_args()
    coord, box, atype = trajectory(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = water_model(tmp / "water.dp", coord[:1], box[:1], atype)
        rows = ours(model, tmp, coord, box, atype)
        np.savez(tmp / "frames.npz", coord=coord, box=box, atype=atype)
        theirs = run_deepmd(DEEPMD_SNIPPET, model=str(model), tmp=str(tmp), frames_file=str(tmp / "frames.npz")) or {}
    for suffix, result in theirs.items():
        row = {"model": f"DeePMD-kit 3.2.0 {suffix}"}
        if "error" in result:
            row["note"] = result["error"]
        else:
            row.update({"load s": result["load"], "first call s": result["first"],
                        "later calls ms (median)": 1e3 * result["steady"]})
        rows.append(row)
    title = f"{len(coord)} water frames (192 atoms; data_0 then data_1), energy + forces + virial, one frame per call"
    text = table(rows, ["model", "load s", "first call s", "later calls ms (median)", "traces", "note"])
    print(title + "\n\n" + text)
    if args.write_docs:
        body = (title + ". The first call includes tracing and XLA compilation; traces counts the "
                "compilations of our programs over the whole trajectory.\n\n" + text)
        print(f"wrote {write_docs_section('jax_compile', 'JAX compilation', body, deepmd=True)}")


if __name__ == "__main__":
    main()
