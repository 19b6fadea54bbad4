"""Descriptor cases: DeePMD-kit's se_e2_r descriptor on water and synthetic systems."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from refgen.common import OUT, load_water, random_system, savez, triclinic


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
