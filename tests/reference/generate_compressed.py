#!/usr/bin/env python
"""Generate DeePMD-kit 3.2.0 compressed se_e2_r reference files (``tests/reference/compressed/``).

Run with the Python environment that has deepmd-kit 3.2.0, not the project's::

    /work/dpvenv/bin/python tests/reference/generate_compressed.py

DeePMD-kit builds a seeded water-like energy model (``sel [46, 92]``, ``rcut 6``,
``neuron [5, 10, 20]``, fitting ``[120, 120, 120]``, fixed davg/dstd), tabulates its
embedding nets with its dpmodel ``enable_compression`` (HEAD-style serialized tables,
descriptor ``@version`` 3) and writes, in ``compressed/water_pbc/``: the compressed
``model.dp``, the frames (``inputs.npz``, frames 0-2 of ``../shared/data/water/data_0``),
DeePMD-kit's energies of the uncompressed and compressed model (``expected.npz``), and
``meta.json`` with the parameters. Tests only read these files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WATER = HERE.parents[2] / "shared" / "data" / "water" / "data_0"
OUT = HERE / "compressed" / "water_pbc"
PARAMS = {"min_nbor_dist": 0.8, "table_extrapolate": 5, "table_stride_1": 0.01, "table_stride_2": 0.1,
          "check_frequency": -1}
MODEL = {
    "type_map": ["O", "H"],
    "descriptor": {"type": "se_e2_r", "sel": [46, 92], "rcut": 6.0, "rcut_smth": 0.5, "neuron": [5, 10, 20],
                   "resnet_dt": False, "type_one_side": True, "seed": 11},
    "fitting_net": {"neuron": [120, 120, 120], "resnet_dt": True, "seed": 12},
}
DAVG, DSTD = [0.05, 0.06], [0.3, 0.35]  # per centre type; any values give a valid range


def energies(model, coord, box, atype) -> tuple[np.ndarray, np.ndarray]:
    nf = coord.shape[0]
    out = model(coord.reshape(nf, -1), np.tile(atype, (nf, 1)), box=box.reshape(nf, 9))
    return np.asarray(out["energy"]).reshape(nf, 1), np.asarray(out["atom_energy"]).reshape(nf, -1, 1)


def main() -> None:
    import deepmd
    from deepmd.dpmodel.model.model import get_model
    from deepmd.dpmodel.utils.serialization import save_dp_model

    model = get_model(json.loads(json.dumps(MODEL)))
    desc = model.atomic_model.descriptor
    desc.davg = (np.array(DAVG)[:, None, None] * np.ones_like(desc.davg)).astype(desc.davg.dtype)
    desc.dstd = (np.array(DSTD)[:, None, None] * np.ones_like(desc.dstd)).astype(desc.dstd.dtype)
    coord = np.load(WATER / "set.000" / "coord.npy")[:3].reshape(3, -1, 3).astype(np.float64)
    box = np.load(WATER / "set.000" / "box.npy")[:3].astype(np.float64)
    atype = np.loadtxt(WATER / "type.raw", dtype=np.int64)
    energy, atom_energy = energies(model, coord, box, atype)
    model.atomic_model.descriptor.enable_compression(
        PARAMS["min_nbor_dist"], PARAMS["table_extrapolate"], PARAMS["table_stride_1"],
        PARAMS["table_stride_2"], PARAMS["check_frequency"])
    c_energy, c_atom_energy = energies(model, coord, box, atype)
    OUT.mkdir(parents=True, exist_ok=True)
    compressed = {"backend": "DPModel", "model": model.serialize(), "model_def_script": MODEL,
                  "@variables": {"min_nbor_dist": PARAMS["min_nbor_dist"]}}
    save_dp_model(str(OUT / "model.dp"), compressed)
    np.savez(OUT / "inputs.npz", coord=coord, box=box, atype=atype)
    np.savez(OUT / "expected.npz", energy=energy, atom_energy=atom_energy, compressed_energy=c_energy,
             compressed_atom_energy=c_atom_energy)
    meta = {"deepmd_kit_version": deepmd.__version__, "model": MODEL, "davg": DAVG, "dstd": DSTD,
            "parameters": PARAMS, "max_abs_energy_change": float(np.abs(c_energy - energy).max())}
    (OUT / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
