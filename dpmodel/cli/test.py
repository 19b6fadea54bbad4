"""``dp test -m MODEL -s SYSTEM``: errors of a model on labelled data (RMSE and MAE table).

Quantities: energy (eV), energy per atom (eV), force (eV/Å), virial (eV) and virial
per atom (eV); virial rows only when the data has ``virial.npy``. With several systems
a last table gives the errors over all of them (weighted by the number of values).
``-d PREFIX`` writes DeePMD-kit's detail files ``PREFIX.e.out``, ``PREFIX.e_peratom.out``,
``PREFIX.f.out``, ``PREFIX.v.out``, ``PREFIX.v_peratom.out``; ``--plot FILE.png`` draws
parity plots of energy per atom and force (needs matplotlib).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "errors", "run"]

QUANTITIES = {"energy": "eV", "energy/atom": "eV", "force": "eV/Å", "virial": "eV", "virial/atom": "eV"}
_CHUNK = 16


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("test", help="errors of a model on labelled data",
                                   description="RMSE and MAE of a model on deepmd/npy systems.")
    parser.add_argument("-m", "--model", type=Path, default=Path("frozen_model.pth"), help="model file (any suffix)")
    parser.add_argument("-s", "--system", default=".", help="system directory, or a folder searched for systems")
    parser.add_argument("-n", "--numb-test", type=int, default=0, help="frames per system (0: all)")
    parser.add_argument("-r", "--rand-seed", type=int, default=None, help="seed of --shuffle-test")
    parser.add_argument("--shuffle-test", action="store_true", help="test random frames instead of the first")
    parser.add_argument("-d", "--detail-file", default=None, help="prefix of the per-frame detail files")
    parser.add_argument("--plot", type=Path, default=None, help="parity plot PNG (needs matplotlib)")
    parser.set_defaults(run=run)
    return parser


def _pairs(system, pred: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``quantity -> (label, prediction)`` flattened per frame."""
    nat = system.natoms
    energy, force, virial = pred["energy"], pred["force"], pred["virial"]
    pairs = {}
    if system.find["energy"]:
        pairs["energy"] = (system.labels["energy"][pred["index"]].reshape(-1, 1), energy.reshape(-1, 1))
        pairs["energy/atom"] = (pairs["energy"][0] / nat, pairs["energy"][1] / nat)
    if system.find["force"]:
        pairs["force"] = (system.labels["force"][pred["index"]].reshape(-1, 3), force.reshape(-1, 3))
    if system.find["virial"]:
        pairs["virial"] = (system.labels["virial"][pred["index"]].reshape(-1, 9), virial.reshape(-1, 9))
        pairs["virial/atom"] = (pairs["virial"][0] / nat, pairs["virial"][1] / nat)
    return pairs


def errors(pairs: dict) -> dict[str, tuple[float, float, int]]:
    """``quantity -> (sum of squared errors, sum of absolute errors, count)``."""
    return {k: (float(np.sum((p - d) ** 2)), float(np.sum(np.abs(p - d))), int(d.size)) for k, (d, p) in pairs.items()}


def _table(title: str, sums: dict) -> str:
    lines = [title, f"  {'quantity':<14}{'RMSE':>12}{'MAE':>12}  unit"]
    for name, unit in QUANTITIES.items():
        if name in sums:
            sq, ab, n = sums[name]
            lines.append(f"  {name:<14}{np.sqrt(sq / n):12.4e}{ab / n:12.4e}  {unit}")
    return "\n".join(lines)


def _predict(dp, system, index: np.ndarray) -> dict:
    parts = []
    for start in range(0, index.size, _CHUNK):
        batch = system.frames(index[start:start + _CHUNK])
        parts.append(dp.eval(batch["coord"], batch["box"], batch["atype"]))
    energy, force, virial = (np.concatenate([p[i] for p in parts]) for i in range(3))
    return {"energy": energy, "force": force, "virial": virial, "index": index}


def _detail(prefix: str, name: str, pairs: dict) -> None:
    files = {"energy": ("e", "data_e pred_e"), "energy/atom": ("e_peratom", "data_e pred_e"),
             "force": ("f", "data_fx data_fy data_fz pred_fx pred_fy pred_fz"),
             "virial": ("v", " ".join(f"data_v{a}{b}" for a in "xyz" for b in "xyz") + " " +
                        " ".join(f"pred_v{a}{b}" for a in "xyz" for b in "xyz")),
             "virial/atom": ("v_peratom", " ".join(f"data_v{a}{b}" for a in "xyz" for b in "xyz") + " " +
                             " ".join(f"pred_v{a}{b}" for a in "xyz" for b in "xyz"))}
    for key, (data, pred) in pairs.items():
        suffix, header = files[key]
        with open(f"{prefix}.{suffix}.out", "a") as f:
            np.savetxt(f, np.concatenate([data, pred], axis=1), header=f"{name}: {header}")


def _plot(path: Path, collected: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib") from err
    keys = [k for k in ("energy/atom", "force") if collected.get(k)]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        data = np.concatenate([d.reshape(-1) for d, _ in collected[key]])
        pred = np.concatenate([p.reshape(-1) for _, p in collected[key]])
        ax.scatter(data, pred, s=4, alpha=0.5)
        low, high = float(min(data.min(), pred.min())), float(max(data.max(), pred.max()))
        ax.plot([low, high], [low, high], "k--", lw=1)
        ax.set(xlabel=f"DFT {key} ({QUANTITIES[key]})", ylabel=f"model {key} ({QUANTITIES[key]})", title=key)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args: argparse.Namespace) -> int:
    from dpmodel.data import DeepmdSystem, expand_systems
    from dpmodel.infer import DeepPot

    dp = DeepPot(args.model)
    rng = np.random.default_rng(args.rand_seed)
    total: dict[str, list] = {}
    collected: dict[str, list] = {}
    paths = expand_systems(args.system)
    for path in paths:
        system = DeepmdSystem(path, dp.get_type_map())
        index = rng.permutation(system.nframes) if args.shuffle_test else np.arange(system.nframes)
        if args.numb_test > 0:
            index = index[: args.numb_test]
        pairs = _pairs(system, _predict(dp, system, index))
        sums = errors(pairs)
        print(_table(f"system {path} ({index.size} frames, {system.natoms} atoms)", sums))
        for key, value in sums.items():
            total.setdefault(key, []).append(value)
            collected.setdefault(key, []).append(pairs[key])
        if args.detail_file:
            _detail(args.detail_file, str(path), pairs)
    if len(paths) > 1:
        merged = {k: tuple(map(sum, zip(*v))) for k, v in total.items()}
        print(_table(f"all {len(paths)} systems", merged))
    if args.plot is not None:
        _plot(args.plot, collected)
    return 0
