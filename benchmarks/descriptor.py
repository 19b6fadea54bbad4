"""Time the se_e2_r descriptor on 192-atom water frames: dpmodel vs DeePMD-kit's NumPy backend.

Usage: ``python benchmarks/descriptor.py [--frames 1 10]``. The same serialized
descriptor (water settings: sel [46, 92], rcut 6, rcut_smth 0.5, neuron [5, 10, 20]) is
timed by dpmodel here and by DeePMD-kit 3.2.0's ``deepmd.dpmodel`` in a subprocess, both
from the same ghost atoms and neighbour list (the descriptor call alone).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import median_time, table, water_frames
from deepmd_runner import run_deepmd
from dpmodel import io
from dpmodel.descriptor import DescrptSeR
from dpmodel.neighbor import neighbor_data
from dpmodel.stat import compute_descriptor_stat

DEEPMD_SNIPPET = """
import time, statistics
import numpy as np
from deepmd.dpmodel.descriptor.se_r import DescrptSeR
from deepmd.dpmodel.utils.serialization import load_dp_model
desc = DescrptSeR.deserialize(load_dp_model(ARGS["model"])["model"])
inputs = np.load(ARGS["inputs"])
out = {}
for nf in ARGS["frames"]:
    args = (inputs[f"coord_ext_{nf}"], inputs[f"atype_ext_{nf}"], inputs[f"nlist_{nf}"])
    for _ in range(2):
        desc.call(*args)
    times = []
    for _ in range(ARGS["repeat"]):
        t = time.perf_counter(); d = desc.call(*args)[0]; times.append(time.perf_counter() - t)
    out[str(nf)] = {"seconds": statistics.median(times), "max_diff": float(np.abs(d - inputs[f"ours_{nf}"]).max())}
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    coord, box, atype = water_frames(max(args.frames))
    desc = DescrptSeR(6.0, 0.5, [46, 92], [5, 10, 20], seed=1)
    compute_descriptor_stat(desc, [(coord, np.tile(atype, (len(coord), 1)), box)])
    rows, arrays = [], {}
    for nf in args.frames:
        ext = neighbor_data(coord[:nf], np.tile(atype, (nf, 1)), box[:nf], desc.rcut, desc.sel)
        call = lambda: desc.call(ext[0], ext[1], ext[3])  # noqa: E731
        arrays |= {f"coord_ext_{nf}": ext[0].reshape(nf, -1), f"atype_ext_{nf}": ext[1], f"nlist_{nf}": ext[3],
                   f"ours_{nf}": call()}
        rows.append({"frames": nf, "dpmodel ms/frame": 1e3 * median_time(call, args.repeat) / nf})
    with tempfile.TemporaryDirectory() as tmp:
        io.save(Path(tmp) / "descriptor.dp", {"model": desc.serialize()})
        np.savez(Path(tmp) / "inputs.npz", **arrays)
        theirs = run_deepmd(DEEPMD_SNIPPET, model=str(Path(tmp) / "descriptor.dp"),
                            inputs=str(Path(tmp) / "inputs.npz"), frames=args.frames, repeat=args.repeat)
    for row in rows:
        if theirs:
            result = theirs[str(row["frames"])]
            row["DeePMD-kit NumPy ms/frame"] = 1e3 * result["seconds"] / row["frames"]
            row["speed-up"] = row["DeePMD-kit NumPy ms/frame"] / row["dpmodel ms/frame"]
            row["max |diff|"] = result["max_diff"]
    print(table(rows, ["frames", "dpmodel ms/frame", "DeePMD-kit NumPy ms/frame", "speed-up", "max |diff|"]))


if __name__ == "__main__":
    main()
