"""Environment, water data and synthetic systems shared by the reference generators."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]  # tests/reference
REPO = HERE.parents[1]
OUT = HERE / "data"
GENERATE = HERE / "generate.py"


def install_cxx_op_stub() -> None:
    """Make ``import deepmd.pt`` work without DeePMD's compiled PyTorch op library.

    The deepmd-kit 3.2.0 wheel ships ``libdeepmd_op_pt.so`` built against torch 2.11
    (and, in the cibuildwheel build, tries to dlopen an ``mpich`` wheel first), which
    fails with torch 2.13.  ``deepmd/pt/cxx_op.py`` only exports ``ENABLE_CUSTOMIZED_OP``
    (plus two helper functions); every PT module that needs a custom op falls back to a
    pure-Python implementation when the op is not registered.  Register a stand-in
    module before the first ``import deepmd.pt``.
    """
    name = "deepmd.pt.cxx_op"
    if name in sys.modules:
        return
    mod = types.ModuleType(name)
    mod.ENABLE_CUSTOMIZED_OP = False
    mod.load_library = lambda module_name: False
    mod.load_mpi_library = lambda: None
    mod.__all__ = ["ENABLE_CUSTOMIZED_OP"]
    sys.modules[name] = mod


def quiet_env() -> dict:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    env.setdefault("DP_INTRA_OP_PARALLELISM_THREADS", "2")
    env.setdefault("DP_INTER_OP_PARALLELISM_THREADS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def run_self(args: list[str], cwd: Path, log: Path) -> None:
    """Run ``generate.py ARGS`` as a sub-process (fresh interpreter, stub installed)."""
    cmd = [sys.executable, str(GENERATE), *args]
    with open(log, "w") as fh:
        proc = subprocess.run(
            cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=quiet_env()
        )
    if proc.returncode != 0:
        tail = "".join(open(log).readlines()[-40:])
        raise RuntimeError(f"command failed ({proc.returncode}): {cmd}\n{tail}")


def find_water(explicit: str | None) -> Path:
    cands = [explicit] if explicit else []
    cands += [
        os.environ.get("WATER_DATA"),
        str(REPO / "shared" / "data" / "water"),
        str(REPO.parent / "shared" / "data" / "water"),
    ]
    for c in cands:
        if c and (Path(c) / "data_0" / "type.raw").is_file():
            return Path(c).resolve()
    raise FileNotFoundError("water data not found; pass --water-data")


def load_water(water: Path, sysname: str) -> dict:
    d = water / sysname
    atype = np.loadtxt(d / "type.raw", dtype=np.int64).reshape(-1)
    tmap = (d / "type_map.raw").read_text().split()
    s = d / "set.000"
    coord = np.load(s / "coord.npy").astype(np.float64)
    box = np.load(s / "box.npy").astype(np.float64)
    nat = atype.size
    return {
        "atype": atype,
        "type_map": tmap,
        "coord": coord.reshape(-1, nat, 3),
        "box": box.reshape(-1, 9),
        "energy": np.load(s / "energy.npy").reshape(-1),
        "force": np.load(s / "force.npy").reshape(-1, nat, 3),
    }


def savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})


def min_pair_distance(coord: np.ndarray, box: np.ndarray | None) -> float:
    """Smallest interatomic distance of one frame (minimum over periodic images)."""
    from deepmd.dpmodel.utils.nlist import extend_coord_with_ghosts
    from deepmd.dpmodel.utils.region import normalize_coord

    nloc = coord.shape[0]
    atype = np.zeros((1, nloc), dtype=np.int64)
    if box is None:
        ext = coord.reshape(1, -1, 3)
    else:
        c = normalize_coord(coord.reshape(1, nloc, 3), box.reshape(1, 3, 3))
        ext, _, _ = extend_coord_with_ghosts(c.reshape(1, -1), atype, box.reshape(1, 9), 3.0)
        ext = ext.reshape(1, -1, 3)
        coord = np.asarray(c).reshape(nloc, 3)
    d = np.linalg.norm(ext[0, None, :, :] - coord[:, None, :], axis=-1)
    d[np.arange(nloc), np.arange(nloc)] = np.inf
    return float(d.min())


def random_system(
    rng: np.random.Generator,
    nloc: int,
    cells: list[np.ndarray] | None,
    extent: float = 5.0,
    dmin: float = 0.9,
    unwrap: bool = True,
    nf: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """nf frames of nloc atoms with 2 types; returns coord [nf,nloc,3], atype, box."""
    atype = np.array([i % 2 for i in range(nloc)], dtype=np.int64)
    rng.shuffle(atype)
    coords = []
    for ff in range(nf):
        for _ in range(10000):
            if cells is None:
                c = rng.uniform(0.0, extent, size=(nloc, 3))
                ok = min_pair_distance(c, None) > dmin
            else:
                cell = cells[ff]
                frac = rng.uniform(0.0, 1.0, size=(nloc, 3))
                if unwrap:
                    # move some atoms to other images so the inputs are not wrapped
                    frac += rng.integers(-1, 2, size=(nloc, 3)) * (
                        rng.uniform(size=(nloc, 1)) < 0.3
                    )
                c = frac @ cell
                ok = min_pair_distance(c, cell.reshape(9)) > dmin
            if ok:
                coords.append(c)
                break
        else:
            raise RuntimeError("could not place atoms")
    box = None if cells is None else np.stack([c.reshape(9) for c in cells])
    return np.stack(coords), np.tile(atype, (nf, 1)), box


def triclinic(a: float, b: float, c: float, tilt: tuple[float, float, float]) -> np.ndarray:
    xy, xz, yz = tilt
    return np.array([[a, 0.0, 0.0], [xy, b, 0.0], [xz, yz, c]], dtype=np.float64)


WATER_SE_R = {"type": "se_e2_r", "sel": [46, 92], "rcut_smth": 0.5, "rcut": 6.0, "neuron": [5, 10, 20],
              "resnet_dt": False}
"""The se_e2_r descriptor settings every trained water reference model shares."""


def training_sections(water: Path, steps: int, validation: bool) -> dict:
    """``learning_rate``, ``loss`` and ``training`` of a DeePMD-kit input training on water
    ``data_0..2`` for ``steps`` steps (batch 1), with ``data_3`` as validation if asked."""
    training = {
        "training_data": {
            "systems": [str(water / f"data_{i}") for i in range(3)],
            "batch_size": 1,
        },
        "numb_steps": steps,
        "seed": 10,
        "disp_file": "lcurve.out",
        "disp_freq": max(steps // 4, 1),
        "save_freq": steps,
    }
    if validation:
        training["validation_data"] = {"systems": [str(water / "data_3")], "batch_size": 1, "numb_btch": 1}
    return {
        "learning_rate": {"type": "exp", "decay_steps": 50, "start_lr": 0.003, "stop_lr": 1.0e-4},
        "loss": {
            "type": "ener",
            "start_pref_e": 0.02,
            "limit_pref_e": 1,
            "start_pref_f": 1000,
            "limit_pref_f": 1,
            "start_pref_v": 0,
            "limit_pref_v": 0,
        },
        "training": training,
    }


def read_lcurve(path: Path) -> dict:
    """Column names and the first and last rows of a DeePMD-kit ``lcurve.out``."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    header = [ln for ln in lines if ln.startswith("#")][0].lstrip("#").split()
    rows = [ln.split() for ln in lines if not ln.startswith("#")]
    return {
        "columns": header,
        "first": [float(x) for x in rows[0]],
        "last": [float(x) for x in rows[-1]],
    }
