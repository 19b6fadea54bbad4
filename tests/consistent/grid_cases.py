"""The consistency grid, declared once: model options x geometries.

Each :class:`Case` builds a serialized model dict (seeded, with data statistics) and a
set of frames. Every backend is checked on every case against the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dpmodel.descriptor import DescrptSeR
from dpmodel.fitting import EnergyFitting
from dpmodel.model import EnergyModel
from dpmodel.stat import compute_descriptor_stat
from dpmodel.training.init import type_embedding_dict
from systems import System, random_system


class TwoSideShape(DescrptSeR):
    """Builds the dict of a ``type_one_side=False`` descriptor (TensorFlow's layout) in dpmodel."""

    backend = "tf"


@dataclass(frozen=True)
class Case:
    """One grid point: options of the descriptor, fitting and model, and a geometry."""

    name: str
    descriptor: dict = field(default_factory=dict)
    fitting: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    geometry: str = "triclinic"
    sel: tuple[int, int] = (30, 30)
    type_embedding: dict | None = None

    @property
    def options(self) -> dict:
        """Key paths and values that backends may refuse (see ``dpmodel.capabilities``)."""
        return {
            "model/descriptor/type_one_side": self.descriptor.get("type_one_side", True),
            "model/descriptor/env_protection": self.descriptor.get("env_protection", 0.0),
            "model/type_embedding": self.type_embedding,
        }

    @property
    def precision(self) -> str:
        return self.descriptor.get("precision", "float64")

    def system(self) -> System:
        if self.geometry == "lonely":  # one atom without neighbours
            sys_ = random_system("cluster", natoms=8, seed=41)
            sys_.coord[:, 0] = sys_.coord[:, 1:].max(axis=1) + 10.0
            return sys_
        if self.geometry == "crowded":  # more neighbours than sel
            return random_system("cubic", natoms=40, seed=42)
        return random_system(self.geometry, natoms=16, seed=43)

    def model_dict(self) -> dict:
        """The serialized energy model of this case."""
        system = self.system()
        options = dict(self.descriptor)
        cls = TwoSideShape if options.get("type_one_side") is False else DescrptSeR
        desc = cls(4.0, 0.5, list(self.sel), [6, 12, 24], seed=5, **options)
        compute_descriptor_stat(desc, [(system.coord, system.atype, system.box)])
        tebd = None
        fitting = dict(self.fitting)
        if self.type_embedding is not None:  # TensorFlow's model-level type embedding: one shared net
            tebd = type_embedding_dict({**self.type_embedding, "seed": 8}, ["A", "B"])
            fitting["mixed_types"] = True
        width = desc.dim_out + (tebd["neuron"][-1] if tebd else 0)
        fit = EnergyFitting(2, width, [24, 24, 24], seed=6, precision=self.precision, **fitting)
        model = EnergyModel(desc, fit, ["A", "B"], **self.model)
        model.out_bias[0, :, 0] = [0.5, -0.7]
        for net in fit.nets.networks:
            net.layers[-1].w = net.layers[-1].w * 20.0
        if fit.numb_fparam:
            fit.fparam_avg, fit.fparam_inv_std = np.full(fit.numb_fparam, 0.2), np.full(fit.numb_fparam, 2.0)
        data = model.serialize()
        if tebd is not None:
            data["type_embedding"] = tebd
        return data

    def params(self, system: System) -> tuple[np.ndarray | None, np.ndarray | None]:
        """fparam (nf, n) and aparam (nf, nat, n) for this case's fitting, or None."""
        nf, nat = system.atype.shape
        rng = np.random.default_rng(7)
        nfp, nap = self.fitting.get("numb_fparam", 0), self.fitting.get("numb_aparam", 0)
        return (rng.random((nf, nfp)) if nfp else None, rng.random((nf, nat, nap)) if nap else None)


ACTIVATIONS = ["relu", "relu6", "softplus", "sigmoid", "gelu", "gelu_tf", "silu", "linear"]

CASES: list[Case] = [
    Case("base"),
    Case("resnet_dt", descriptor={"resnet_dt": True}),
    Case("two_side", descriptor={"type_one_side": False}),
    Case("two_side_exclude", descriptor={"type_one_side": False, "exclude_types": [[0, 1]]}),
    Case("exclude_types", descriptor={"exclude_types": [[0, 1]]}),
    Case("env_protection", descriptor={"env_protection": 1e-2}),
    Case("set_davg_zero", descriptor={"set_davg_zero": True}),
    *[Case(f"act_{a}", descriptor={"activation_function": a}) for a in ACTIVATIONS],
    Case("float32", descriptor={"precision": "float32"}),
    Case("small_sel", sel=(3, 4)),
    Case("large_sel", sel=(60, 60)),
    Case("cubic", geometry="cubic"),
    Case("small_box", geometry="small"),
    Case("cluster", geometry="cluster"),
    Case("lonely_atom", geometry="lonely"),
    Case("crowded", geometry="crowded", sel=(8, 8)),
    Case("fitting_no_resnet_dt", fitting={"resnet_dt": False}),
    Case("atom_exclude", model={"atom_exclude_types": [1]}),
    Case("pair_exclude", model={"pair_exclude_types": [[0, 0]]}),
    Case("fparam_aparam", fitting={"numb_fparam": 2, "numb_aparam": 1}),
    Case("type_embedding", type_embedding={"neuron": [4, 8]}),
    Case("type_embedding_two_side", descriptor={"type_one_side": False}, type_embedding={"neuron": [8]}),
]
"""The grid (options x geometries x model options; the reference is its first supporting backend)."""
