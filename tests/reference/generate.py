#!/usr/bin/env python
"""Generate reference files for the se_e2_r descriptor / energy model tests.

Run with a Python environment that has deepmd-kit 3.2.0 (and torch, optionally
tensorflow-cpu) installed -- NOT the project's own environment, e.g.::

    /work/dpvenv/bin/python tests/reference/generate.py

Everything is written below ``tests/reference/data/`` (see README.md next to this
file for the layout).  The committed tests only read the generated files; they never
import deepmd.

Sub-commands (used internally, each in its own process):

* ``generate.py dp ARGS...``   run DeePMD-kit's ``dp`` command line with ARGS
                               (after installing the cxx_op stand-in, see below);
* ``generate.py tf-eval DIR``  evaluate ``DIR/model.pb`` with the TF backend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = HERE / "data"


# ---------------------------------------------------------------------------------------
# Environment helpers
# ---------------------------------------------------------------------------------------
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
    """Run this script as a sub-process (fresh interpreter, stub installed)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
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


# ---------------------------------------------------------------------------------------
# Synthetic systems
# ---------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------
# Descriptor cases
# ---------------------------------------------------------------------------------------
def descriptor_cases(water: Path) -> list[dict]:
    rng = np.random.default_rng(20240601)
    cell_a = triclinic(6.2, 5.8, 6.5, (0.9, -0.7, 1.1))
    cell_b = triclinic(6.0, 6.1, 6.4, (-0.5, 0.6, -0.8))
    tri = random_system(rng, 20, [cell_a, cell_b], nf=2)
    thin_cell = triclinic(5.5, 4.8, 2.6, (0.8, 0.4, -0.6))  # face distance 2.6 < rcut
    thin = random_system(rng, 10, [thin_cell], dmin=1.0)
    cluster = random_system(rng, 16, None, extent=6.0, nf=2)
    small_cell = triclinic(4.5, 4.6, 4.4, (0.3, 0.2, -0.4))
    dense = random_system(rng, 24, [small_cell], dmin=0.8)

    base = {
        "rcut": 4.0,
        "rcut_smth": 0.5,
        "sel": [20, 20],
        "neuron": [4, 8, 16],
        "resnet_dt": False,
        "activation_function": "tanh",
        "precision": "float64",
        "exclude_types": [],
        "env_protection": 0.0,
        "type_map": ["A", "B"],
    }

    def case(name, system, note, **over):
        p = dict(base)
        p.update(over)
        return {"name": name, "system": system, "params": p, "note": note}

    w = load_water(water, "data_0")
    water_sys = (w["coord"][:2], np.tile(w["atype"], (2, 1)), w["box"][:2])
    return [
        case("pbc_triclinic", tri, "2 frames, different triclinic cells, unwrapped inputs"),
        case(
            "thin_box",
            thin,
            "face distance 2.6 < rcut 4 (two image shells along c)",
            rcut_smth=1.0,
            sel=[40, 40],
        ),
        case("cluster_nopbc", cluster, "non-periodic, no box", rcut_smth=2.0),
        case("float32", tri, "float32 precision", precision="float32"),
        case("gelu", tri, "gelu activation", activation_function="gelu"),
        case("softplus", tri, "softplus activation", activation_function="softplus"),
        case("exclude_01", tri, "exclude_types [[0,1]]", exclude_types=[[0, 1]]),
        case(
            "resnet_dt",
            tri,
            "resnet_dt with neuron [2,2,4,8]: 1->2 concat skip, 2->2 identity skip",
            resnet_dt=True,
            neuron=[2, 2, 4, 8],
        ),
        case("env_protection", tri, "env_protection 0.1", env_protection=0.1),
        case(
            "sel_truncated",
            dense,
            "sel [4,3] smaller than the neighbour count: truncation before type split",
            sel=[4, 3],
            rcut=3.5,
        ),
        case(
            "water",
            water_sys,
            "2 frames of water data_0; davg/dstd from deepmd statistics on water",
            rcut=6.0,
            rcut_smth=0.5,
            sel=[46, 92],
            neuron=[5, 10, 20],
            type_map=["O", "H"],
            stats_from_water=True,
        ),
    ]


def water_stat_samples(water: Path) -> list[dict]:
    samples = []
    for i in range(4):
        w = load_water(water, f"data_{i}")
        idx = np.arange(0, w["coord"].shape[0], 20)[:4]
        nf = idx.size
        samples.append(
            {
                "coord": w["coord"][idx].reshape(nf, -1),
                "atype": np.tile(w["atype"], (nf, 1)),
                "box": w["box"][idx],
                "natoms": None,
            }
        )
    return samples


def gen_descriptor(c: dict, water: Path, seed: int) -> dict:
    from deepmd.dpmodel.descriptor.se_r import DescrptSeR
    from deepmd.dpmodel.utils.nlist import (
        build_neighbor_list,
        extend_coord_with_ghosts,
    )
    from deepmd.dpmodel.utils.region import normalize_coord
    from deepmd.dpmodel.utils.serialization import load_dp_model, save_dp_model

    p = dict(c["params"])
    stats_from_water = p.pop("stats_from_water", False)
    coord, atype, box = c["system"]
    nf, nloc = atype.shape
    desc = DescrptSeR(
        rcut=p["rcut"],
        rcut_smth=p["rcut_smth"],
        sel=p["sel"],
        neuron=p["neuron"],
        resnet_dt=p["resnet_dt"],
        exclude_types=p["exclude_types"],
        env_protection=p["env_protection"],
        activation_function=p["activation_function"],
        precision=p["precision"],
        type_map=p["type_map"],
        seed=seed,
    )
    nnei = sum(p["sel"])
    ntypes = len(p["sel"])
    if stats_from_water:
        desc.compute_input_stats(water_stat_samples(water))
        stat_kind = "deepmd compute_input_stats on 16 water frames (data_0..3)"
    else:
        srng = np.random.default_rng(seed + 1000)
        davg = srng.uniform(0.0, 0.3, size=(ntypes, nnei, 1))
        dstd = srng.uniform(0.1, 0.5, size=(ntypes, nnei, 1))
        desc.davg = davg.astype(desc.davg.dtype)
        desc.dstd = dstd.astype(desc.dstd.dtype)
        stat_kind = "random per (centre type, slot): davg~U(0,0.3), dstd~U(0.1,0.5)"

    # neighbour list exactly as deepmd builds it (distinguish_types=True)
    if box is not None:
        cn = normalize_coord(coord.reshape(nf, nloc, 3), box.reshape(nf, 3, 3))
    else:
        cn = coord.reshape(nf, nloc, 3)
    coord_ext, atype_ext, mapping = extend_coord_with_ghosts(
        cn.reshape(nf, -1), atype, box, p["rcut"]
    )
    nlist = build_neighbor_list(
        coord_ext, atype_ext, nloc, p["rcut"], p["sel"], distinguish_types=True
    )
    dd, _, _, _, sw = desc.call(coord_ext, atype_ext, nlist)
    env_mat, diff, _ = desc.env_mat.call(
        coord_ext, atype_ext, nlist, desc.davg, desc.dstd, True
    )

    d = OUT / "descriptor" / c["name"]
    d.mkdir(parents=True, exist_ok=True)
    save_dp_model(str(d / "descriptor.dp"), {"model": desc.serialize()})
    savez(
        d / "inputs.npz",
        coord=coord.astype(np.float64),
        atype=atype.astype(np.int64),
        box=None if box is None else box.astype(np.float64),
        rcut=np.array(p["rcut"], dtype=np.float64),
        rcut_smth=np.array(p["rcut_smth"], dtype=np.float64),
        sel=np.array(p["sel"], dtype=np.int64),
        coord_ext=np.asarray(coord_ext, dtype=np.float64).reshape(nf, -1),
        atype_ext=np.asarray(atype_ext, dtype=np.int64),
        nlist=np.asarray(nlist, dtype=np.int64),
        mapping=np.asarray(mapping, dtype=np.int64),
    )
    savez(
        d / "expected.npz",
        descriptor=np.asarray(dd, dtype=np.float64),
        sw=np.asarray(sw, dtype=np.float64),
        # normalised env matrix (before exclusion), a debugging aid; omitted for the
        # large water case to keep the files small
        env_mat=None if stats_from_water else np.asarray(env_mat, dtype=np.float64),
    )

    # ---- verification with deepmd itself ----
    back = load_dp_model(str(d / "descriptor.dp"))
    d2 = DescrptSeR.deserialize(back["model"])
    dd2 = d2.call(coord_ext, atype_ext, nlist)[0]
    err_reload = float(np.max(np.abs(dd2 - dd)))
    assert err_reload == 0.0, err_reload
    err_pt = pt_descriptor_check(back["model"], coord_ext, atype_ext, nlist, dd)
    tol = 1e-5 if p["precision"] == "float32" else 1e-10
    assert err_pt < tol, (c["name"], err_pt)
    n_real = int((np.asarray(nlist) >= 0).sum())
    print(
        f"  descriptor/{c['name']}: nf={nf} nloc={nloc} nall={atype_ext.shape[1]} "
        f"real neighbours={n_real} |D|max={np.abs(dd).max():.3g} "
        f"reload err={err_reload:.1e} pt err={err_pt:.1e}"
    )
    meta = dict(c["params"])
    meta.pop("stats_from_water", None)
    meta.update(
        {
            "note": c["note"],
            "seed": seed,
            "nf": int(nf),
            "nloc": int(nloc),
            "nall": int(atype_ext.shape[1]),
            "periodic": box is not None,
            "davg_dstd": stat_kind,
            "serialized_version": back["model"]["@version"],
            "check_max_abs_diff_pt_backend": err_pt,
        }
    )
    return meta


def pt_descriptor_check(ddict, coord_ext, atype_ext, nlist, expected) -> float:
    """Re-evaluate the serialized descriptor with deepmd's PyTorch backend."""
    import torch
    from deepmd.pt.model.descriptor.se_r import DescrptSeR as PTSeR

    pt = PTSeR.deserialize(ddict)
    with torch.no_grad():
        out = pt(
            torch.from_numpy(np.asarray(coord_ext, dtype=np.float64)),
            torch.from_numpy(np.asarray(atype_ext, dtype=np.int64)),
            torch.from_numpy(np.asarray(nlist, dtype=np.int64)),
        )[0]
    return float(np.max(np.abs(out.double().numpy() - expected)))


# ---------------------------------------------------------------------------------------
# PyTorch-trained water energy model
# ---------------------------------------------------------------------------------------
def pt_input(water: Path, precision: str, steps: int) -> dict:
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {
                "type": "se_e2_r",
                "sel": [46, 92],
                "rcut_smth": 0.5,
                "rcut": 6.0,
                "neuron": [5, 10, 20],
                "resnet_dt": False,
                "activation_function": "tanh",
                "precision": precision,
                "seed": 1,
            },
            "fitting_net": {
                "neuron": [120, 120, 120],
                "resnet_dt": True,
                "activation_function": "tanh",
                "precision": precision,
                "seed": 1,
            },
        },
        "learning_rate": {
            "type": "exp",
            "decay_steps": 50,
            "start_lr": 0.003,
            "stop_lr": 1.0e-4,
        },
        "loss": {
            "type": "ener",
            "start_pref_e": 0.02,
            "limit_pref_e": 1,
            "start_pref_f": 1000,
            "limit_pref_f": 1,
            "start_pref_v": 0,
            "limit_pref_v": 0,
        },
        "training": {
            "training_data": {
                "systems": [str(water / f"data_{i}") for i in range(3)],
                "batch_size": 1,
            },
            "validation_data": {
                "systems": [str(water / "data_3")],
                "batch_size": 1,
                "numb_btch": 1,
            },
            "numb_steps": steps,
            "seed": 10,
            "disp_file": "lcurve.out",
            "disp_freq": max(steps // 4, 1),
            "save_freq": steps,
        },
    }


def read_lcurve(path: Path) -> dict:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    header = [ln for ln in lines if ln.startswith("#")][0].lstrip("#").split()
    rows = [ln.split() for ln in lines if not ln.startswith("#")]
    return {
        "columns": header,
        "first": [float(x) for x in rows[0]],
        "last": [float(x) for x in rows[-1]],
    }


def train_pt_model(work: Path, water: Path, precision: str, steps: int, reuse: bool) -> dict:
    info_file = work / "train_info.json"
    if reuse and info_file.is_file():
        info = json.loads(info_file.read_text())
        if info["train_steps"] == steps:
            print(f"  reusing the training run in {work}")
            return info
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "input.json").write_text(json.dumps(pt_input(water, precision, steps), indent=2))
    t0 = time.time()
    run_self(["dp", "--pt", "train", "input.json"], work, work / "train.log")
    t1 = time.time()
    run_self(["dp", "--pt", "freeze", "-o", "model.pth"], work, work / "freeze.log")
    run_self(["dp", "convert-backend", "model.pth", "model.dp"], work, work / "conv.log")
    run_self(["dp", "convert-backend", "model.pth", "model.yaml"], work, work / "conv2.log")
    info = {
        "train_steps": steps,
        "train_seconds": round(t1 - t0, 1),
        "lcurve": read_lcurve(work / "lcurve.out"),
        "input_json": pt_input(Path("<water>"), precision, steps),
    }
    info_file.write_text(json.dumps(info))
    return info


def make_f32_model(src: Path, dst: Path) -> dict:
    """Float32 copy of the trained float64 model (same weights, cast by deepmd).

    The float64 envelope is read back, every ``precision`` of the descriptor, the
    embedding/fitting nets and their layers is set to ``float32`` (also in
    ``model_def_script``), and deepmd's PyTorch backend builds the TorchScript model
    from that dict (``deserialize_to_file``, i.e. what ``dp convert-backend x.dp y.pth``
    does); the ``.dp`` / expected values then come from that ``.pth``.
    """
    install_cxx_op_stub()
    import copy

    from deepmd.dpmodel.utils.serialization import load_dp_model
    from deepmd.pt.utils.serialization import deserialize_to_file

    dst.mkdir(parents=True, exist_ok=True)
    data = load_dp_model(str(src / "model.dp"))
    for k in ("software", "version", "time"):
        data.pop(k, None)
    data = copy.deepcopy(data)

    def walk(x):
        if isinstance(x, dict):
            if "precision" in x:
                x["precision"] = "float32"
            if x.get("@class") == "Layer":
                # deepmd's PT layer keeps the array dtype it is given
                for k, v in x["@variables"].items():
                    if v is not None:
                        x["@variables"][k] = np.asarray(v, dtype=np.float32)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data["model"]["descriptor"])
    dv = data["model"]["descriptor"]["@variables"]
    for k in ("davg", "dstd"):
        dv[k] = np.asarray(dv[k], dtype=np.float32)
    walk(data["model"]["fitting"])
    data["model_def_script"]["descriptor"]["precision"] = "float32"
    data["model_def_script"]["fitting_net"]["precision"] = "float32"
    deserialize_to_file(str(dst / "model.pth"), data)
    run_self(["dp", "convert-backend", "model.pth", "model.dp"], dst, dst / "conv.log")
    return {"made_from": "float64 model cast to float32 (precision fields changed)"}


def water_cluster(w: dict, frame: int, nmol: int) -> tuple[np.ndarray, np.ndarray]:
    """nmol intact molecules closest to molecule 0, unwrapped around its oxygen."""
    coord = w["coord"][frame]
    cell = w["box"][frame].reshape(3, 3)
    inv = np.linalg.inv(cell)
    atype = w["atype"]

    def mic(v):
        f = v @ inv
        f -= np.round(f)
        return f @ cell

    o_idx = np.where(atype == 0)[0]
    h_idx = np.where(atype == 1)[0]
    centre = coord[o_idx[0]]
    rel_o = mic(coord[o_idx] - centre)
    order = np.argsort(np.linalg.norm(rel_o, axis=1))[:nmol]
    pos, typ = [], []
    for k in order:
        o_pos = centre + rel_o[k]
        dh = mic(coord[h_idx] - o_pos)
        hs = np.argsort(np.linalg.norm(dh, axis=1))[:2]
        assert np.linalg.norm(dh[hs], axis=1).max() < 1.3, "molecule not intact"
        pos.append(o_pos)
        typ.append(0)
        for h in hs:
            pos.append(o_pos + dh[h])
            typ.append(1)
    return np.array(pos), np.array(typ, dtype=np.int64)


def model_cases(water: Path) -> list[dict]:
    w = load_water(water, "data_0")
    rng = np.random.default_rng(7)
    perm = rng.permutation(w["atype"].size)
    ccoord, ctype = water_cluster(w, frame=3, nmol=10)
    return [
        {
            "name": "water_pbc",
            "model": "f64",
            "coord": w["coord"][[0, 1, 2]],
            "atype": w["atype"],
            "box": w["box"][[0, 1, 2]],
            "note": "frames 0,1,2 of water data_0",
        },
        {
            "name": "water_shuffled",
            "model": "f64",
            "coord": w["coord"][[5]][:, perm],
            "atype": w["atype"][perm],
            "box": w["box"][[5]],
            "note": "frame 5 of data_0 with atoms randomly permuted (seed 7)",
            "permutation": perm,
        },
        {
            "name": "water_cluster",
            "model": "f64",
            "coord": ccoord[None],
            "atype": ctype,
            "box": None,
            "note": "10 intact molecules nearest to molecule 0 of frame 3, unwrapped, no box",
        },
        {
            "name": "model_f32",
            "model": "f32",
            "coord": w["coord"][[0, 1]],
            "atype": w["atype"],
            "box": w["box"][[0, 1]],
            "note": "float32 model (descriptor + fitting precision float32), frames 0,1",
        },
    ]


def pt_eval(pth: Path, coord, box, atype) -> dict:
    install_cxx_op_stub()
    from deepmd.infer import DeepPot

    dp = DeepPot(str(pth))
    e, f, v, ae, av = dp.eval(coord, box, atype, atomic=True)
    nf = coord.shape[0]
    nat = atype.size
    return {
        "energy": np.asarray(e, np.float64).reshape(nf, 1),
        "force": np.asarray(f, np.float64).reshape(nf, nat, 3),
        "virial": np.asarray(v, np.float64).reshape(nf, 9),
        "atom_energy": np.asarray(ae, np.float64).reshape(nf, nat, 1),
        "atom_virial": np.asarray(av, np.float64).reshape(nf, nat, 9),
    }


def dp_energy(model_file: Path, coord, box, atype) -> np.ndarray:
    """Energies via deepmd's pure-NumPy dpmodel backend (no forces there)."""
    from deepmd.infer import DeepPot

    dp = DeepPot(str(model_file))
    e, _, _, ae, _ = dp.eval(coord, box, atype, atomic=True)
    return np.asarray(e).reshape(-1), np.asarray(ae).reshape(coord.shape[0], -1)


def fd_checks(model_file: Path, coord, box, atype, ref: dict) -> dict:
    """Finite differences of the dpmodel (.dp) energy vs PT forces / virial."""
    from deepmd.infer import DeepPot

    dp = DeepPot(str(model_file))

    def energy(c, b):
        return float(dp.eval(c[None], None if b is None else b[None], atype)[0].reshape(-1)[0])

    h = 1e-4
    c0 = coord[0].copy()
    b0 = None if box is None else box[0].copy()
    ferr = 0.0
    for i in (0, 1, 5):
        for a in range(3):
            cp, cm = c0.copy(), c0.copy()
            cp[i, a] += h
            cm[i, a] -= h
            fd = -(energy(cp, b0) - energy(cm, b0)) / (2 * h)
            ferr = max(ferr, abs(fd - ref["force"][0, i, a]))
    verr = None
    if b0 is not None:
        # homogeneous strain x' = x (I + eps), box' = box (I + eps);
        # virial[a][b] = sum_i F_ia x_ib = -dE/d eps_ba
        verr = 0.0
        for a in range(3):
            for b in range(3):
                eps = np.zeros((3, 3))
                eps[b, a] = h
                fp = np.eye(3) + eps
                fm = np.eye(3) - eps
                ep = energy(c0 @ fp, (b0.reshape(3, 3) @ fp).reshape(9))
                em = energy(c0 @ fm, (b0.reshape(3, 3) @ fm).reshape(9))
                fdv = -(ep - em) / (2 * h)
                verr = max(verr, abs(fdv - ref["virial"][0, 3 * a + b]))
    return {"fd_force_max_err": ferr, "fd_virial_max_err": verr}


def gen_models(water: Path, work: Path, steps: int, reuse: bool) -> dict:
    from deepmd.dpmodel.utils.serialization import load_dp_model

    info = {}
    trained = {}
    t0 = time.time()
    if (work / "pt_f32").exists():
        shutil.rmtree(work / "pt_f32")
    trained["f64"] = train_pt_model(work / "pt_f64", water, "float64", steps, reuse)
    print(f"  trained PT model in {time.time() - t0:.0f}s: {trained['f64']['lcurve']}")
    trained["f32"] = make_f32_model(work / "pt_f64", work / "pt_f32")

    for c in model_cases(water):
        wdir = work / f"pt_{c['model']}"
        d = OUT / "model" / c["name"]
        d.mkdir(parents=True, exist_ok=True)
        # identical bytes in every case directory -> git stores one blob
        shutil.copyfile(wdir / "model.dp", d / "model.dp")
        if c["name"] == "water_pbc":
            shutil.copyfile(wdir / "model.yaml", d / "model.yaml")
        coord, atype, box = c["coord"], c["atype"], c["box"]
        ref = pt_eval(wdir / "model.pth", coord, box, atype)
        savez(
            d / "inputs.npz",
            coord=coord.astype(np.float64),
            atype=atype.astype(np.int64),
            box=None if box is None else box.astype(np.float64),
        )
        savez(d / "expected.npz", **ref)

        # ---- verification ----
        e_dp, ae_dp = dp_energy(d / "model.dp", coord, box, atype)
        err_e = float(np.max(np.abs(e_dp - ref["energy"].reshape(-1))))
        err_ae = float(np.max(np.abs(ae_dp - ref["atom_energy"].reshape(ae_dp.shape))))
        checks = {"dpmodel_energy_max_err": err_e, "dpmodel_atom_energy_max_err": err_ae}
        if c["name"] == "water_pbc":
            e_y, _ = dp_energy(d / "model.yaml", coord, box, atype)
            checks["yaml_energy_max_err"] = float(np.max(np.abs(e_y - e_dp)))
            a = load_dp_model(str(d / "model.dp"))
            b = load_dp_model(str(d / "model.yaml"))
            checks["yaml_vs_dp_json_equal"] = json.dumps(
                strip_vars(a), sort_keys=True
            ) == json.dumps(strip_vars(b), sort_keys=True)
        if c["model"] == "f64":
            checks.update(fd_checks(d / "model.dp", coord, box, atype, ref))
        frc_rms = float(np.sqrt(np.mean(ref["force"] ** 2)))
        vsum = float(np.max(np.abs(ref["atom_virial"].sum(1) - ref["virial"])))
        esum = float(np.max(np.abs(ref["atom_energy"].sum(1) - ref["energy"])))
        fsum = float(np.max(np.abs(ref["force"].sum(1))))
        checks.update(
            {
                "force_rms": frc_rms,
                "sum_atom_virial_minus_virial": vsum,
                "sum_atom_energy_minus_energy": esum,
                "net_force_max": fsum,
            }
        )
        tol = 1e-3 if c["model"] == "f32" else 1e-8
        assert err_e < tol * max(1.0, abs(ref["energy"]).max()) and frc_rms > 1e-3, checks
        if c["model"] == "f64":
            assert checks["fd_force_max_err"] < 1e-5, checks
            if checks["fd_virial_max_err"] is not None:
                assert checks["fd_virial_max_err"] < 1e-4, checks
        e_per_atom = ref["energy"].reshape(-1) / atype.size
        print(
            f"  model/{c['name']}: E={ref['energy'].reshape(-1)} (per atom "
            f"{e_per_atom}) force rms={frc_rms:.3f} checks={checks}"
        )
        meta = {
            "note": c["note"],
            "model": {"f64": "water float64", "f32": "water float32"}[c["model"]],
            "nf": int(coord.shape[0]),
            "natoms": int(atype.size),
            "periodic": box is not None,
            "checks": checks,
        }
        if "permutation" in c:
            meta["permutation_seed"] = 7
        info[c["name"]] = meta

    mdict = load_dp_model(str(OUT / "model" / "water_pbc" / "model.dp"))
    water_ref = load_water(water, "data_0")
    info["_models"] = {
        tag: {
            **trained[tag],
            "out_bias": np.asarray(
                load_dp_model(str(work / f"pt_{tag}" / "model.dp"))["model"]["@variables"][
                    "out_bias"
                ]
            )
            .reshape(-1)
            .tolist(),
            "envelope_keys": sorted(k for k in mdict if k != "model"),
        }
        for tag in trained
    }
    info["_models"]["water_data_0_label_energy_frames_0_2"] = water_ref["energy"][:3].tolist()
    return info


def strip_vars(d):
    """Drop array values (compare only the JSON structure)."""
    if isinstance(d, dict):
        return {
            k: ("<vars>" if k == "@variables" else strip_vars(v))
            for k, v in d.items()
            if k != "time"
        }
    if isinstance(d, list):
        return [strip_vars(x) for x in d]
    return d


# ---------------------------------------------------------------------------------------
# TensorFlow models (optional)
# ---------------------------------------------------------------------------------------
def tf_input(water: Path, variant: str, steps: int) -> dict:
    desc = {
        "type": "se_e2_r",
        "sel": [46, 92],
        "rcut_smth": 0.5,
        "rcut": 6.0,
        "neuron": [5, 10, 20],
        "resnet_dt": False,
        "type_one_side": variant != "two_side",
        "seed": 1,
    }
    model = {
        "type_map": ["O", "H"],
        "descriptor": desc,
        "fitting_net": {"neuron": [24, 24, 24], "resnet_dt": True, "seed": 1},
    }
    if variant == "type_embedding":
        model["type_embedding"] = {"neuron": [4], "seed": 1}
    return {
        "model": model,
        "learning_rate": {"type": "exp", "decay_steps": 50, "start_lr": 0.003, "stop_lr": 1e-4},
        "loss": {
            "type": "ener",
            "start_pref_e": 0.02,
            "limit_pref_e": 1,
            "start_pref_f": 1000,
            "limit_pref_f": 1,
            "start_pref_v": 0,
            "limit_pref_v": 0,
        },
        "training": {
            "training_data": {
                "systems": [str(water / f"data_{i}") for i in range(3)],
                "batch_size": 1,
            },
            "numb_steps": steps,
            "seed": 10,
            "disp_file": "lcurve.out",
            "disp_freq": max(steps // 4, 1),
            "save_freq": steps,
        },
    }


TF_CASES = {
    "one_side": "se_e2_r, type_one_side true",
    "two_side": "se_e2_r, type_one_side false (one embedding net per (centre, neighbour) type)",
    "type_embedding": "se_e2_r + model-level type_embedding (TF only; fitting gets [D, T(t_i)])",
}


def tf_eval_main(case_dir: str) -> None:
    from deepmd.infer import DeepPot

    d = Path(case_dir)
    inp = np.load(d / "inputs.npz")
    coord, atype, box = inp["coord"], inp["atype"], inp["box"]
    dp = DeepPot(str(d / "model.pb"))
    e, f, v, ae, av = dp.eval(coord, box, atype, atomic=True)
    nf, nat = coord.shape[0], atype.size
    savez(
        d / "expected.npz",
        energy=np.asarray(e, np.float64).reshape(nf, 1),
        force=np.asarray(f, np.float64).reshape(nf, nat, 3),
        virial=np.asarray(v, np.float64).reshape(nf, 9),
        atom_energy=np.asarray(ae, np.float64).reshape(nf, nat, 1),
        atom_virial=np.asarray(av, np.float64).reshape(nf, nat, 9),
    )


def gen_tf(water: Path, work: Path, steps: int) -> dict:
    info = {}
    w = load_water(water, "data_0")
    for name, note in TF_CASES.items():
        wdir = work / f"tf_{name}"
        if wdir.exists():
            shutil.rmtree(wdir)
        wdir.mkdir(parents=True)
        (wdir / "input.json").write_text(json.dumps(tf_input(water, name, steps), indent=2))
        t0 = time.time()
        run_self(
            ["dp", "--tf", "train", "input.json", "--skip-neighbor-stat"],
            wdir,
            wdir / "train.log",
        )
        run_self(["dp", "--tf", "freeze", "-o", "model.pb"], wdir, wdir / "freeze.log")
        d = OUT / "tf" / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        shutil.copyfile(wdir / "model.pb", d / "model.pb")
        savez(
            d / "inputs.npz",
            coord=w["coord"][[0, 1]],
            atype=w["atype"],
            box=w["box"][[0, 1]],
        )
        run_self(["tf-eval", str(d)], wdir, wdir / "eval.log")
        meta = {
            "note": note,
            "train_steps": steps,
            "train_seconds": round(time.time() - t0, 1),
            "lcurve": read_lcurve(wdir / "lcurve.out"),
            "input_json": tf_input(Path("<water>"), name, steps),
        }
        # can deepmd export it to the backend-independent format?
        try:
            run_self(["dp", "convert-backend", "model.pb", "model.dp"], wdir, wdir / "conv.log")
            shutil.copyfile(wdir / "model.dp", d / "model.dp")
            meta["convert_to_dp"] = "ok (model.dp written)"
            meta.update(check_tf_dp(d))
        except RuntimeError as exc:
            last = [ln for ln in str(exc).splitlines() if "Error" in ln]
            meta["convert_to_dp"] = "failed: " + (last[-1].strip() if last else "see log")
        ref = np.load(d / "expected.npz")
        meta["energy"] = ref["energy"].reshape(-1).tolist()
        meta["force_rms"] = float(np.sqrt(np.mean(ref["force"] ** 2)))
        meta["sum_atom_virial_minus_virial"] = float(
            np.max(np.abs(ref["atom_virial"].sum(1) - ref["virial"]))
        )
        print(f"  tf/{name}: {meta['energy']} force rms {meta['force_rms']:.3f} "
              f"convert: {meta['convert_to_dp']}")
        info[name] = meta
    return info


def check_tf_dp(d: Path) -> dict:
    """Where the converted TF model keeps its bias; dpmodel energy vs TF energy."""
    from deepmd.dpmodel.utils.serialization import load_dp_model

    m = load_dp_model(str(d / "model.dp"))["model"]
    out = {
        "dp_out_bias": np.asarray(m["@variables"]["out_bias"]).reshape(-1).tolist(),
        "dp_bias_atom_e": np.asarray(m["fitting"]["@variables"]["bias_atom_e"])
        .reshape(-1)
        .tolist(),
        "dp_descriptor_type_one_side": m["descriptor"]["type_one_side"],
    }
    inp = np.load(d / "inputs.npz")
    ref = np.load(d / "expected.npz")
    try:
        e, ae = dp_energy(d / "model.dp", inp["coord"], inp["box"], inp["atype"])
        out["dpmodel_energy_max_err"] = float(np.max(np.abs(e - ref["energy"].reshape(-1))))
        out["dpmodel_atom_energy_max_err"] = float(
            np.max(np.abs(ae - ref["atom_energy"].reshape(ae.shape)))
        )
    except Exception as exc:  # two-side nets are rejected by the dpmodel backend
        out["dpmodel_eval"] = f"{type(exc).__name__}: {exc}"
    return out


def tf_available() -> tuple[bool, str]:
    try:
        import tensorflow  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the environment
        return False, f"tensorflow not importable: {exc}"
    return True, tensorflow.__version__


# ---------------------------------------------------------------------------------------
def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "dp":
        install_cxx_op_stub()
        from deepmd.main import main as dp_main

        dp_main(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "tf-eval":
        tf_eval_main(sys.argv[2])
        return

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--water-data", default=None, help="directory holding data_0..3")
    ap.add_argument("--work", default="/tmp/se_r_reference_work", help="scratch dir")
    ap.add_argument("--steps", type=int, default=300, help="PT training steps")
    ap.add_argument("--tf-steps", type=int, default=200, help="TF training steps")
    ap.add_argument(
        "--reuse-training",
        action="store_true",
        help="reuse a finished PT training run (same --steps) found in --work",
    )
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--skip-tf", action="store_true")
    args = ap.parse_args()

    install_cxx_op_stub()
    os.environ.update({k: v for k, v in quiet_env().items() if k not in os.environ})
    import deepmd
    import torch

    water = find_water(args.water_data)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    manifest_path = OUT / "MANIFEST.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    manifest = {
        "generator": "tests/reference/generate.py",
        "deepmd_kit_version": deepmd.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": sys.version.split()[0],
        "water_data": "shared/data/water (deepmd/npy, 192 atoms, type_map O H)",
    }

    print("descriptor cases")
    if (OUT / "descriptor").exists():
        shutil.rmtree(OUT / "descriptor")
    desc_info = {}
    for i, c in enumerate(descriptor_cases(water)):
        desc_info[c["name"]] = gen_descriptor(c, water, seed=100 + i)
    manifest["descriptor_cases"] = desc_info

    if args.skip_models:
        manifest["model_cases"] = old.get("model_cases", {})
    else:
        print("model cases")
        if (OUT / "model").exists():
            shutil.rmtree(OUT / "model")
        minfo = gen_models(water, work, args.steps, args.reuse_training)
        manifest["models"] = minfo.pop("_models")
        manifest["model_cases"] = minfo
    if args.skip_models:
        manifest["models"] = old.get("models", {})

    ok, tfv = tf_available()
    if args.skip_tf:
        manifest["tensorflow_version"] = old.get("tensorflow_version")
        manifest["tf_cases"] = old.get("tf_cases", {})
    elif ok:
        print(f"tf cases (tensorflow {tfv})")
        manifest["tensorflow_version"] = tfv
        manifest["tf_cases"] = gen_tf(water, work, args.tf_steps)
    else:
        print(f"skipping TF cases: {tfv}")
        manifest["tensorflow_version"] = None
        manifest["tf_cases"] = {}
        manifest["tf_skipped_reason"] = tfv
    manifest["generation_seconds"] = round(time.time() - t_start, 1)
    manifest_path.write_text(json.dumps(manifest, indent=1, default=_json_default) + "\n")
    print(f"done in {time.time() - t_start:.0f}s")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


if __name__ == "__main__":
    main()
