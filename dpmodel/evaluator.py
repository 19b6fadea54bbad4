"""dpmodel's own evaluator and file hooks: the ``io`` module of the built-in ``dpmodel`` backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dpmodel.io import load, save
from dpmodel.model_factory import model_from_dict

__all__ = ["Evaluator", "load", "save"]


class Evaluator:
    """dpmodel's evaluator of ``.dp``/``.yaml`` files (NumPy, analytic forces)."""

    def __init__(self, path: str | Path | None = None, data: dict | None = None) -> None:
        self.data = load(path) if data is None else data
        self.model = model_from_dict(self.data["model"])

    def evaluate(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray,
                 fparam: np.ndarray | None = None, aparam: np.ndarray | None = None,
                 atomic: bool = False) -> dict[str, np.ndarray]:
        """Outputs of :meth:`dpmodel.model.EnergyModel.call` for (nf, nat, 3) ``coord``."""
        return self.model.call(coord, atype, box, fparam, aparam, do_atomic_virial=atomic)

    def eval_descriptor(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray) -> np.ndarray:
        from dpmodel.neighbor import neighbor_data

        desc = self.model.descriptor
        coord_ext, atype_ext, _, nlist = neighbor_data(coord, atype, box, desc.rcut, desc.sel)
        return desc.call(coord_ext, atype_ext, nlist)
