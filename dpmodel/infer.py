"""``DeepPot``: evaluate any model file with DeePMD-kit's calling convention.

The file suffix picks the backend through :mod:`dpmodel.registry`; the backend's
``Evaluator`` computes, this module only shapes inputs and outputs. A neutral
``.dp``/``.yaml`` file whose model uses an option dpmodel does not implement (a
TensorFlow-only ``type_one_side = false`` or type embedding) is evaluated by the first
installed backend that implements it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dpmodel import allocator
from dpmodel.capabilities import is_supported, model_options
from dpmodel.errors import UnsupportedOptionError
from dpmodel.registry import BackendInfo, backends, for_suffix

_LOG = logging.getLogger(__name__)


class DeepPot:
    """A potential from any model file (``.dp``, ``.yaml``, ``.pth``, ``.jax``, ``.hlo``, ``.pb``, ...).

    Parameters
    ----------
    path : model file; its suffix selects the backend.
    """

    def __init__(self, path: str | Path) -> None:
        allocator.tune()
        self.path = Path(path)
        self.backend = for_suffix(path)
        try:
            self.evaluator = self.backend.module("io").Evaluator(path)
        except UnsupportedOptionError:
            data = self.backend.module("io").load(path)
            fallback = _implementing_backend(data["model"])
            if fallback is None:
                raise
            _LOG.info("%s: evaluated with %s, which implements its options", path, fallback.name)
            self.backend = fallback
            self.evaluator = fallback.module("io").Evaluator(data=data)
        model = self.evaluator.data["model"]
        self._type_map = list(model["type_map"])
        self._rcut = float(model["descriptor"]["rcut"])
        self._sel = list(model["descriptor"]["sel"])
        self._dim_fparam = int(model["fitting"].get("numb_fparam", 0))
        self._dim_aparam = int(model["fitting"].get("numb_aparam", 0))

    def get_type_map(self) -> list[str]:
        return list(self._type_map)

    def get_ntypes(self) -> int:
        return len(self._type_map)

    def get_rcut(self) -> float:
        return self._rcut

    def get_sel(self) -> list[int]:
        return list(self._sel)

    def get_dim_fparam(self) -> int:
        return self._dim_fparam

    def get_dim_aparam(self) -> int:
        return self._dim_aparam

    def eval(self, coords: Any, cells: Any, atom_types: Any, atomic: bool = False, fparam: Any = None,
             aparam: Any = None, **_: Any) -> tuple[np.ndarray, ...]:
        """Energy, force and virial (and atomic energy and virial with ``atomic``).

        Parameters
        ----------
        coords : shape (nf, nat*3) or (nf, nat, 3); Å
        cells : shape (nf, 9) or None (no periodicity); Å
        atom_types : shape (nat,) or (nf, nat), int; indices into :meth:`get_type_map`
        fparam : shape (nf, dim_fparam) or (dim_fparam,), optional
        aparam : shape (nf, nat, dim_aparam) or (nat, dim_aparam), optional

        Returns
        -------
        energy (nf, 1) eV, force (nf, nat, 3) eV/Å, virial (nf, 9) eV; with ``atomic`` also
        atom_energy (nf, nat, 1) eV and atom_virial (nf, nat, 9) eV.
        """
        coord, box, atype = self._frames(coords, cells, atom_types)
        nf, nat = atype.shape
        if fparam is not None:
            fparam = np.broadcast_to(np.asarray(fparam, np.float64).reshape(-1, self._dim_fparam), (nf, self._dim_fparam))
        if aparam is not None:
            aparam = np.broadcast_to(np.asarray(aparam, np.float64).reshape(-1, nat, self._dim_aparam),
                                     (nf, nat, self._dim_aparam))
        out = self.evaluator.evaluate(coord, box, atype, fparam, aparam, atomic)
        result = (np.asarray(out["energy"]).reshape(nf, 1), np.asarray(out["force"]).reshape(nf, nat, 3),
                  np.asarray(out["virial"]).reshape(nf, 9))
        if atomic:
            result += (np.asarray(out["atom_energy"]).reshape(nf, nat, 1),
                       np.asarray(out["atom_virial"]).reshape(nf, nat, 9))
        return result

    def eval_descriptor(self, coords: Any, cells: Any, atom_types: Any) -> np.ndarray:
        """Descriptor of every atom, shape (nf, nat, ng)."""
        coord, box, atype = self._frames(coords, cells, atom_types)
        return np.asarray(self.evaluator.eval_descriptor(coord, box, atype))

    @staticmethod
    def _frames(coords: Any, cells: Any, atom_types: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        atype = np.asarray(atom_types, dtype=np.int64)
        coord = np.asarray(coords, dtype=np.float64)
        nat = atype.shape[-1]
        coord = coord.reshape(-1, nat, 3)
        nf = coord.shape[0]
        atype = np.broadcast_to(atype.reshape(-1, nat), (nf, nat))
        box = None if cells is None else np.asarray(cells, dtype=np.float64).reshape(nf, 9)
        return coord, box, np.ascontiguousarray(atype)


def _implementing_backend(model: dict) -> BackendInfo | None:
    """The first installed backend that implements every restricted option of ``model``."""
    options = model_options(model)
    for info in backends().values():
        if info.available() and all(is_supported(key, value, info.name) for key, value in options.items()):
            return info
    return None
