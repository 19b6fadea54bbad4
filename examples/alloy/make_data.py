"""Generate the small Cu/Au alloy data set of this example with ASE's EMT potential.

Two ``deepmd/npy`` systems are written next to this script:

- ``data/train``: 200 frames, four Langevin MD runs (50 frames each) of a random
  Cu24Au8 fcc supercell (2x2x2 conventional cells, 32 atoms) at 300-1200 K and
  three lattice constants (so the virial varies);
- ``data/valid``: 40 frames from two runs of a *different* random Cu24Au8
  arrangement, with other seeds.

Labels: ``energy`` (eV), ``force`` (eV/Å) and ``virial`` = -stress * volume (eV,
row-major 3x3, DeePMD's convention) from EMT; ``box`` rows are the cell vectors.
Everything is seeded, so running the script again rewrites identical files.  It
also prints the largest neighbour count per type within ``RCUT`` and
``ceil(1.1 * count)``, the ``sel`` used in ``input.json``.

Usage: ``python examples/alloy/make_data.py`` (needs ``ase``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from ase.neighborlist import neighbor_list

TYPE_MAP = ["Cu", "Au"]
N_AU = 8
RCUT = 5.0
#: lattice constant of the Cu3Au alloy by Vegard's law, Å
A0 = 0.75 * 3.61 + 0.25 * 4.08
HERE = Path(__file__).resolve().parent

#: (temperature K, lattice scale, frames) of each MD run
TRAIN_RUNS = [(300, 1.00, 50), (600, 0.99, 50), (900, 1.01, 50), (1200, 1.00, 50)]
VALID_RUNS = [(450, 1.00, 20), (1000, 1.005, 20)]


def make_cell(rng: np.random.Generator, scale: float) -> Atoms:
    """Return a 32-atom fcc supercell with ``N_AU`` random Au sites."""
    atoms = bulk("Cu", "fcc", a=A0 * scale, cubic=True).repeat((2, 2, 2))
    symbols = np.array(["Cu"] * len(atoms))
    symbols[rng.permutation(len(atoms))[:N_AU]] = "Au"
    atoms.set_chemical_symbols(symbols.tolist())
    return atoms


def run_md(
    atoms: Atoms, temperature: float, nframes: int, rng: np.random.Generator
) -> list[dict[str, np.ndarray]]:
    """Equilibrate 200 steps, then sample a frame every 20 steps (dt = 2 fs)."""
    atoms = atoms.copy()
    atoms.calc = EMT()
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(
        atoms,
        2.0 * units.fs,
        temperature_K=temperature,
        friction=0.02,
        fixcm=False,
        rng=rng,
    )
    dyn.run(200)
    frames = []
    for _ in range(nframes):
        dyn.run(20)
        volume = atoms.get_volume()
        frames.append(
            {
                "coord": atoms.get_positions().reshape(-1),
                "box": atoms.get_cell().array.reshape(-1),
                "energy": np.array(atoms.get_potential_energy()),
                "force": atoms.get_forces().reshape(-1),
                "virial": (-atoms.get_stress(voigt=False) * volume).reshape(-1),
            }
        )
    return frames


def write_system(path: Path, atoms: Atoms, frames: list[dict[str, np.ndarray]]) -> None:
    """Write ``type.raw``, ``type_map.raw`` and ``set.000/*.npy``."""
    types = [TYPE_MAP.index(s) for s in atoms.get_chemical_symbols()]
    (path / "set.000").mkdir(parents=True, exist_ok=True)
    (path / "type.raw").write_text("".join(f"{t}\n" for t in types))
    (path / "type_map.raw").write_text("".join(f"{e}\n" for e in TYPE_MAP))
    for key in frames[0]:
        data = np.stack([frame[key] for frame in frames]).astype(np.float64)
        np.save(path / "set.000" / f"{key}.npy", data)


def max_neighbors(atoms: Atoms, frames: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Largest number of neighbours of each type within ``RCUT`` over all frames."""
    types = np.array([TYPE_MAP.index(s) for s in atoms.get_chemical_symbols()])
    worst = np.zeros(len(TYPE_MAP), dtype=int)
    for frame in frames:
        snap = Atoms(
            numbers=atoms.numbers,
            positions=frame["coord"].reshape(-1, 3),
            cell=frame["box"].reshape(3, 3),
            pbc=True,
        )
        first, second = neighbor_list("ij", snap, RCUT)
        for itype in range(len(TYPE_MAP)):
            counts = np.zeros(len(snap), dtype=int)
            np.add.at(counts, first[types[second] == itype], 1)
            worst[itype] = max(worst[itype], counts.max())
    return worst


def build(name: str, runs: list[tuple[float, float, int]], seed: int) -> np.ndarray:
    """Run the MD of one system, write it and return its max neighbour counts."""
    rng = np.random.default_rng(seed)
    template = make_cell(rng, 1.0)
    frames = []
    for temperature, scale, nframes in runs:
        atoms = template.copy()
        atoms.set_cell(template.cell * scale, scale_atoms=True)
        frames += run_md(atoms, temperature, nframes, rng)
    write_system(HERE / "data" / name, template, frames)
    return max_neighbors(template, frames)


def main() -> None:
    """Write ``data/train`` and ``data/valid`` and print neighbour counts."""
    worst = np.maximum(build("train", TRAIN_RUNS, 2024), build("valid", VALID_RUNS, 7))
    sel = np.ceil(1.1 * worst).astype(int)
    print(f"max neighbours within {RCUT} Å per type {TYPE_MAP}: {worst.tolist()}")
    print(f"sel = ceil(1.1 * max) = {sel.tolist()}")


if __name__ == "__main__":
    main()
