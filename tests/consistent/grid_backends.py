"""The backends of the consistency grid: one adapter each, declared once.

An adapter turns a model envelope into an evaluator with ``evaluate(coord, box, atype,
fparam, aparam, atomic)`` and ``eval_descriptor(coord, box, atype)``, both returning
NumPy. Adding a backend adds one entry here, not a copy of every test.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dpmodel.evaluator import Evaluator as NumpyEvaluator
from dpmodel.neighbor import neighbor_data
from dpmodel.registry import save_model_file


class StrictEvaluator(NumpyEvaluator):
    """dpmodel evaluated on array-api-strict arrays (strictest flags but data-dependent shapes)."""

    def evaluate(self, coord, box, atype, fparam=None, aparam=None, atomic=False):
        import array_api_strict as xps

        wrap = lambda a: None if a is None else xps.asarray(a)  # noqa: E731
        with xps.ArrayAPIStrictFlags(data_dependent_shapes=True):
            out = self.model.call(wrap(coord), wrap(atype), wrap(box), wrap(fparam), wrap(aparam), atomic)
        return {k: np.from_dlpack(v) for k, v in out.items()}

    def eval_descriptor(self, coord, box, atype):
        import array_api_strict as xps

        desc = self.model.descriptor
        wrap = lambda a: None if a is None else xps.asarray(a)  # noqa: E731
        ext = neighbor_data(wrap(coord), wrap(atype), wrap(box), desc.rcut, desc.sel)
        return np.from_dlpack(desc.call(ext[0], ext[1], ext[3]))


def _pt_eager(data: dict, tmp: Path) -> Any:
    from backends.pt.io import Evaluator

    return Evaluator(data=data)


def _pt_script(data: dict, tmp: Path) -> Any:
    from backends.pt.io import Evaluator

    save_model_file(tmp / "model.pth", data)
    return Evaluator(tmp / "model.pth", program=True)


def _jax_jit(data: dict, tmp: Path) -> Any:
    from backends.jax.io import Evaluator

    return Evaluator(data=data)


def _jax_hlo(data: dict, tmp: Path) -> Any:
    from backends.jax.io import Evaluator

    save_model_file(tmp / "model.hlo", data)
    return Evaluator(tmp / "model.hlo")


def _tf_eager(data: dict, tmp: Path) -> Any:
    from backends.tf.io import Evaluator

    return Evaluator(data=data, mode="eager")


def _tf_function(data: dict, tmp: Path) -> Any:
    from backends.tf.io import Evaluator

    return Evaluator(data=data)


@dataclass(frozen=True)
class Backend:
    """One column of the grid.

    Attributes
    ----------
    name : column label (``pt-script``)
    capability : backend name in :mod:`dpmodel.capabilities`
    requires : module that must be importable
    make : (envelope, tmp dir) -> evaluator
    """

    name: str
    capability: str
    requires: str
    make: Callable[[dict, Path], Any]

    def missing(self) -> str | None:
        """Why this backend cannot run here, or None."""
        if importlib.util.find_spec(self.requires) is None:
            return f"{self.requires} is not installed (pip install '.[{self.capability}]')"
        return None


BACKENDS: list[Backend] = [
    Backend("dpmodel-numpy", "dpmodel", "numpy", lambda data, tmp: NumpyEvaluator(data=data)),
    Backend("dpmodel-strict", "dpmodel", "array_api_strict", lambda data, tmp: StrictEvaluator(data=data)),
    Backend("pt-eager", "pt", "torch", _pt_eager),
    Backend("pt-script", "pt", "torch", _pt_script),
    Backend("jax-jit", "jax", "jax", _jax_jit),
    Backend("jax-hlo", "jax", "jax", _jax_hlo),
    Backend("tf-eager", "tf", "tensorflow", _tf_eager),
    Backend("tf-function", "tf", "tensorflow", _tf_function),
]
