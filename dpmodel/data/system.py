"""One ``deepmd/npy`` data system: files, shapes, type remapping, frame batches.

Layout (SPEC 8.5)::

    system/type.raw          nat ints, type index of each atom
    system/type_map.raw      optional element names that type.raw indexes
    system/nopbc             optional empty file: non-periodic, no box needed
    system/set.*/coord.npy   (nframes, nat*3)  Å         required
    system/set.*/box.npy     (nframes, 9)      Å         required unless nopbc
    system/set.*/energy.npy  (nframes,) or (nframes, 1)  eV      optional label
    system/set.*/force.npy   (nframes, nat*3)  eV/Å      optional label
    system/set.*/virial.npy  (nframes, 9)      eV        optional label
    system/set.*/atom_ener.npy (nframes, nat)  eV        optional label

All ``set.*`` directories are read (sorted by name) and concatenated; every array
is float64.  A label file absent from all sets gives zeros and ``find_<label> = 0``.
Atoms keep their file order (no sorting by type).  Many systems are batched by
``dpmodel.data.systems.DataSystems``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dpmodel.errors import DataError

__all__ = ["LABELS", "DeepmdSystem"]

#: label name -> (columns per frame as a function of natoms, text for messages)
LABELS: dict[str, tuple[Callable[[int], int], str]] = {
    "energy": (lambda nat: 1, "(nframes,) or (nframes, 1)"),
    "force": (lambda nat: 3 * nat, "(nframes, natoms*3)"),
    "virial": (lambda nat: 9, "(nframes, 9)"),
    "atom_ener": (lambda nat: nat, "(nframes, natoms)"),
}


class DeepmdSystem:
    """A ``deepmd/npy`` system loaded into memory as float64.

    Parameters
    ----------
    path : str or path
        The system directory.
    type_map : list of str, optional
        The model's element names.  With ``type_map.raw`` present, types are
        remapped by element name onto it; without, ``type.raw`` indices are used
        as they are and must be < ``len(type_map)``.

    Attributes
    ----------
    nframes, natoms, ntypes : int
        Frame count over all sets, atoms per frame, number of model types.
    atype : ndarray, shape (natoms,), int
        Type index (into ``type_map``) of each atom.
    type_map : list of str or None
        The model's type map (or ``type_map.raw`` when no model map is given).
    pbc : bool
        False if the ``nopbc`` file exists.
    """

    def __init__(
        self, path: str | os.PathLike, type_map: Sequence[str] | None = None
    ) -> None:
        self.path = Path(path)
        raw_atype = self._read_type_raw()
        raw_map = self._read_type_map_raw()
        self.atype, self.type_map = self._remap(raw_atype, raw_map, type_map)
        self.natoms = int(self.atype.size)
        if self.type_map is not None:
            self.ntypes = len(self.type_map)
        else:
            self.ntypes = int(self.atype.max()) + 1
        self.pbc = not (self.path / "nopbc").exists()
        self._load_sets()

    def _read_type_raw(self) -> np.ndarray:
        """Read ``type.raw`` as a 1-D int array."""
        file = self.path / "type.raw"
        if not file.is_file():
            raise DataError(f"{file} is missing; every deepmd/npy system needs it")
        try:
            atype = np.loadtxt(file, dtype=np.int64, ndmin=1)
        except ValueError as err:
            raise DataError(f"{file} must hold one integer per atom: {err}") from err
        if atype.size == 0 or atype.min() < 0:
            raise DataError(f"{file} must hold one non-negative integer per atom")
        return atype

    def _read_type_map_raw(self) -> list[str] | None:
        """Read ``type_map.raw`` element names, or None when absent."""
        file = self.path / "type_map.raw"
        if not file.is_file():
            return None
        return file.read_text().split()

    def _remap(
        self,
        raw_atype: np.ndarray,
        raw_map: list[str] | None,
        type_map: Sequence[str] | None,
    ) -> tuple[np.ndarray, list[str] | None]:
        """Map ``type.raw`` indices onto the model's ``type_map`` by element name."""
        if raw_map is not None and raw_atype.max() >= len(raw_map):
            raise DataError(
                f"{self.path / 'type.raw'} uses type {raw_atype.max()} but "
                f"{self.path / 'type_map.raw'} names only {len(raw_map)} elements"
            )
        if type_map is None:
            return raw_atype, raw_map
        type_map = list(type_map)
        if raw_map is None:
            if raw_atype.max() >= len(type_map):
                raise DataError(
                    f"{self.path / 'type.raw'} uses type {raw_atype.max()} but the "
                    f"model type_map {type_map} has only {len(type_map)} types"
                )
            return raw_atype, type_map
        for element in raw_map:
            if element not in type_map:
                raise DataError(
                    f"element {element!r} of {self.path / 'type_map.raw'} is not in "
                    f"the model type_map {type_map}; add it to model/type_map"
                )
        lookup = np.array([type_map.index(element) for element in raw_map])
        return lookup[raw_atype], type_map

    def _load_sets(self) -> None:
        """Read and concatenate every ``set.*`` directory."""
        sets = sorted(p for p in self.path.glob("set.*") if p.is_dir())
        if not sets:
            raise DataError(f"{self.path} has no set.* directory")
        parts = [self._load_set(s) for s in sets]
        self.nframes = sum(part["coord"].shape[0] for part in parts)
        self.coord = np.concatenate([p["coord"] for p in parts]).reshape(
            self.nframes, self.natoms, 3
        )
        self.box = np.concatenate([p["box"] for p in parts]) if self.pbc else None
        self.labels: dict[str, np.ndarray] = {}
        self.find: dict[str, float] = {}
        for name, (ncols, _) in LABELS.items():
            present = [name in p for p in parts]
            if any(present) and not all(present):
                missing = sets[present.index(False)] / f"{name}.npy"
                raise DataError(
                    f"{missing} is missing while other sets of {self.path} have it; "
                    "a label must be present in all sets or in none"
                )
            self.find[name] = 1.0 if all(present) else 0.0
            self.labels[name] = (
                np.concatenate([p[name] for p in parts])
                if all(present)
                else np.zeros((self.nframes, ncols(self.natoms)))
            )

    def _load_set(self, set_dir: Path) -> dict[str, np.ndarray]:
        """Read one set; labels that are absent are left out of the dict."""
        coord = self._load_npy(set_dir, "coord", self.natoms * 3, "(nframes, natoms*3)")
        nframes = coord.shape[0]
        out = {"coord": coord}
        if self.pbc:
            out["box"] = self._load_npy(set_dir, "box", 9, "(nframes, 9)", nframes)
        for name, (ncols, text) in LABELS.items():
            if (set_dir / f"{name}.npy").is_file():
                out[name] = self._load_npy(
                    set_dir, name, ncols(self.natoms), text, nframes
                )
        return out

    def _load_npy(
        self,
        set_dir: Path,
        name: str,
        ncols: int,
        expected: str,
        nframes: int | None = None,
    ) -> np.ndarray:
        """Load ``set_dir/name.npy`` as float64 of shape (nframes, ncols)."""
        file = set_dir / f"{name}.npy"
        shown = self.path / set_dir.name / file.name
        if not file.is_file():
            raise DataError(f"{shown} is missing; expected shape {expected}")
        raw = np.load(file)
        rows = raw.shape[0] if raw.ndim else 0
        want = rows if nframes is None else nframes
        if rows == 0 or rows != want or int(np.prod(raw.shape[1:])) != ncols:
            frames = "" if nframes is None else f" (nframes={nframes} from coord.npy)"
            raise DataError(
                f"{shown} has shape {raw.shape}, expected ({want or 'nframes>0'}, "
                f"{ncols}) = {expected}{frames}"
            )
        return raw.reshape(rows, ncols).astype(np.float64)

    def frames(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Return a batch of frames.

        Parameters
        ----------
        indices : sequence of int, length nb
            Frame indices in ``[0, nframes)``.

        Returns
        -------
        dict
            ``coord`` (nb, nat, 3) Å; ``box`` (nb, 9) Å or None (nopbc);
            ``atype`` (nb, nat) int; ``energy`` (nb, 1) eV; ``force`` (nb, nat, 3)
            eV/Å; ``virial`` (nb, 9) eV; ``atom_ener`` (nb, nat) eV;
            ``find_<label>`` float 1.0/0.0; ``natoms_per_type`` (nb, ntypes) int.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        nbatch = idx.size
        counts = np.bincount(self.atype, minlength=self.ntypes)
        batch: dict[str, Any] = {
            "coord": self.coord[idx],
            "box": None if self.box is None else self.box[idx],
            "atype": np.tile(self.atype, (nbatch, 1)),
            "natoms_per_type": np.tile(counts, (nbatch, 1)),
            "energy": self.labels["energy"][idx],
            "force": self.labels["force"][idx].reshape(nbatch, self.natoms, 3),
            "virial": self.labels["virial"][idx],
            "atom_ener": self.labels["atom_ener"][idx],
        }
        batch.update({f"find_{name}": flag for name, flag in self.find.items()})
        return batch
