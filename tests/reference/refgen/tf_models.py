"""TensorFlow-trained se_e2_r models frozen to ``.pb`` by DeePMD-kit (optional)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from refgen.common import OUT, load_water, read_lcurve, run_self, savez, training_sections, WATER_SE_R
from refgen.models import dp_energy


def tf_input(water: Path, variant: str, steps: int) -> dict:
    desc = {**WATER_SE_R, "type_one_side": variant != "two_side", "seed": 1}
    model = {
        "type_map": ["O", "H"],
        "descriptor": desc,
        "fitting_net": {"neuron": [24, 24, 24], "resnet_dt": True, "seed": 1},
    }
    if variant == "type_embedding":
        model["type_embedding"] = {"neuron": [4], "seed": 1}
    return {
        "model": model,
        **training_sections(water, steps, validation=False),
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
