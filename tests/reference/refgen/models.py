"""Reference outputs of the trained water energy models: the model cases (water frames, a shuffled
frame, a cluster), DeePMD-kit's energies, forces and virials, and finite-difference checks."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from refgen.common import OUT, install_cxx_op_stub, load_water, savez
from refgen.pt_training import make_f32_model, train_pt_model


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
