"""Energy, forces and virials of a TensorFlow :class:`~backends.tf.modules.EnergyModel`.

Forces come from one ``tf.GradientTape`` gradient of the summed energy with respect to
the pair displacements, folded by :func:`dpmodel.forces.forces_and_virials`. The graph
takes extended atoms and a prepared neighbour list (the *lower* interface; the list is
built on NumPy by :func:`prepare_inputs`), compiled once by ``tf.function`` with a fixed
input signature whose frame, atom and ghost dimensions are ``None``: one trace serves
every frame and system size.

Graph inputs (also the placeholder names of a frozen ``.pb``, prefixed ``i_``):

=========== ======================= ======= =============================================
name        shape                   dtype   meaning
=========== ======================= ======= =============================================
coord_ext   (nf, nall, 3)           float64 extended coordinates, Å; local atoms first
atype_ext   (nf, nall)              int64   types; -1 marks a virtual atom
nlist       (nf, nloc, nnei)        int64   type-split neighbour list, -1 for padding
mapping     (nf, nall)              int64   local index of every extended atom
fparam      (nf, numb_fparam)       float64 frame parameters (width 0 when unused)
aparam      (nf, nloc, numb_aparam) float64 atomic parameters (width 0 when unused)
=========== ======================= ======= =============================================

Outputs (prefixed ``o_`` in a ``.pb``): ``energy`` (nf, 1) eV, ``atom_energy``
(nf, nloc, 1) eV, ``force`` (nf, nloc, 3) eV/Å, ``virial`` (nf, 9) eV, ``atom_virial``
(nf, nloc, 9) eV, ``mask`` (nf, nloc) int32, and ``descriptor`` (nf, nloc, ng) from the
first three inputs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from dpmodel.env_mat import pair_displacements
from dpmodel.forces import forces_and_virials
from dpmodel.neighbor import neighbor_data

from backends.tf.modules import EnergyModel
from backends.tf.xp import TFArray, register, unwrap

INPUT_NAMES = ("coord_ext", "atype_ext", "nlist", "mapping", "fparam", "aparam")
OUTPUT_NAMES = ("energy", "atom_energy", "force", "virial", "atom_virial", "mask")


def input_signature(nnei: int, numb_fparam: int = 0, numb_aparam: int = 0) -> list[tf.TensorSpec]:
    """The fixed ``tf.function`` signature of the lower interface (see the module table)."""
    return [
        tf.TensorSpec([None, None, 3], tf.float64, name="coord_ext"),
        tf.TensorSpec([None, None], tf.int64, name="atype_ext"),
        tf.TensorSpec([None, None, nnei], tf.int64, name="nlist"),
        tf.TensorSpec([None, None], tf.int64, name="mapping"),
        tf.TensorSpec([None, numb_fparam], tf.float64, name="fparam"),
        tf.TensorSpec([None, None, numb_aparam], tf.float64, name="aparam"),
    ]


def signature_of(model: EnergyModel) -> list[tf.TensorSpec]:
    return input_signature(model.descriptor.nnei, model.fitting.numb_fparam, model.fitting.numb_aparam)


def energy_and_forces(model: EnergyModel, coord_ext: tf.Tensor, atype_ext: tf.Tensor, nlist: tf.Tensor,
                      mapping: tf.Tensor, fparam: tf.Tensor | None = None, aparam: tf.Tensor | None = None,
                      type_blocks: Sequence[int] | None = None, widths: Sequence[int] | None = None
                      ) -> dict[str, tf.Tensor]:
    """Outputs of the lower interface as ``tf.Tensor`` objects (works eagerly and inside ``tf.function``).

    ``type_blocks``: atom counts per type, when every frame lists its local atoms sorted by type
    (:func:`dpmodel.fitting.type_blocks`); each fitting net then runs on its own atoms only.
    ``widths``: slots per type block of an ``nlist`` cut by :func:`dpmodel.neighbor.cut_neighbor_list`
    (the dropped slots were padding; their constant embedding is added back).
    """
    register()
    coord_ext, atype_ext, nlist, mapping = (TFArray(tf.convert_to_tensor(t)) for t in (coord_ext, atype_ext, nlist, mapping))
    fparam = None if fparam is None or not model.fitting.numb_fparam else TFArray(tf.convert_to_tensor(fparam))
    aparam = None if aparam is None or not model.fitting.numb_aparam else TFArray(tf.convert_to_tensor(aparam))
    nlist = model.exclude_pairs(atype_ext, nlist)
    diff = unwrap(pair_displacements(coord_ext, nlist))
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(diff)
        atom_energy, mask = model.atomic_energy_from_pairs(TFArray(diff), atype_ext, nlist, fparam, aparam,
                                                           widths=None if widths is None else list(widths),
                                                           type_blocks=type_blocks, split_types=False)
        total = tf.reduce_sum(unwrap(atom_energy))
    pair_grad = tape.gradient(total, diff, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    force, virial, atom_virial = forces_and_virials(TFArray(pair_grad), TFArray(diff), nlist, mapping, True)
    out = {
        "energy": tf.reduce_sum(unwrap(atom_energy), axis=1),
        "atom_energy": unwrap(atom_energy),
        "force": unwrap(force),
        "virial": unwrap(virial),
        "atom_virial": unwrap(atom_virial),
        "mask": unwrap(mask),
    }
    return out


def descriptor_of(model: EnergyModel, coord_ext: tf.Tensor, atype_ext: tf.Tensor, nlist: tf.Tensor) -> tf.Tensor:
    """Descriptor (nf, nloc, ng), float64; virtual atoms are read as type 0."""
    register()
    coord_ext, atype_ext, nlist = (TFArray(tf.convert_to_tensor(t)) for t in (coord_ext, atype_ext, nlist))
    safe = TFArray(tf.where(atype_ext.t >= 0, atype_ext.t, tf.zeros_like(atype_ext.t)))
    return unwrap(model.descriptor.call(coord_ext, safe, nlist))


def prepare_inputs(coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray, rcut: float, sel: list[int],
                   fparam: np.ndarray | None = None, aparam: np.ndarray | None = None, numb_fparam: int = 0,
                   numb_aparam: int = 0, default_fparam: Any = None) -> dict[str, np.ndarray]:
    """NumPy inputs of the lower interface (ghosts and neighbour list by :mod:`dpmodel.neighbor`).

    Parameters
    ----------
    coord : shape (nf, nat, 3), float; Å
    box : shape (nf, 9) or None; Å
    atype : shape (nf, nat), int
    fparam : shape (nf, numb_fparam) or None (``default_fparam`` is used when set)
    aparam : shape (nf, nat, numb_aparam) or None
    """
    atype = np.asarray(atype, dtype=np.int64)
    nf, nat = atype.shape
    coord = np.asarray(coord, dtype=np.float64).reshape(nf, nat, 3)
    box = None if box is None else np.asarray(box, dtype=np.float64).reshape(nf, 9)
    coord_ext, atype_ext, mapping, nlist = neighbor_data(coord, atype, box, rcut, sel)
    if numb_fparam and fparam is None:
        if default_fparam is None:
            raise ValueError(f"this model needs fparam of shape (nframes, {numb_fparam}); none was given")
        fparam = np.tile(np.asarray(default_fparam, np.float64).reshape(1, numb_fparam), (nf, 1))
    if numb_aparam and aparam is None:
        raise ValueError(f"this model needs aparam of shape (nframes, natoms, {numb_aparam}); none was given")
    return {
        "coord_ext": np.ascontiguousarray(coord_ext, dtype=np.float64),
        "atype_ext": np.ascontiguousarray(atype_ext, dtype=np.int64),
        "nlist": np.ascontiguousarray(nlist, dtype=np.int64),
        "mapping": np.ascontiguousarray(mapping, dtype=np.int64),
        "fparam": np.zeros((nf, 0)) if not numb_fparam else np.asarray(fparam, np.float64).reshape(nf, numb_fparam),
        "aparam": np.zeros((nf, nat, 0)) if not numb_aparam else np.asarray(aparam, np.float64).reshape(nf, nat, numb_aparam),
    }


class CompiledModel:
    """A TF :class:`EnergyModel` with its ``tf.function`` objects (one trace each, fixed signature).

    Attributes
    ----------
    model : the wrapped model
    trace_count : how many times the lower interface has been traced (1 after any number of calls)
    call_lower : ``tf.function`` of :func:`energy_and_forces` over :func:`signature_of`
    descriptor_lower : ``tf.function`` of :func:`descriptor_of`
    """

    def __init__(self, model: EnergyModel) -> None:
        self.model = model
        self.trace_count = 0
        signature = signature_of(model)
        self.call_lower = tf.function(self._call_lower, input_signature=signature, autograph=False)
        self.descriptor_lower = tf.function(self._descriptor, input_signature=signature[:3], autograph=False)

    def _call_lower(self, coord_ext, atype_ext, nlist, mapping, fparam, aparam):
        self.trace_count += 1
        return energy_and_forces(self.model, coord_ext, atype_ext, nlist, mapping, fparam, aparam)

    def _descriptor(self, coord_ext, atype_ext, nlist):
        return descriptor_of(self.model, coord_ext, atype_ext, nlist)

    def prepare(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray, fparam: Any = None,
                aparam: Any = None) -> dict[str, np.ndarray]:
        fitting = self.model.fitting
        return prepare_inputs(coord, box, atype, self.model.get_rcut(), self.model.get_sel(), fparam, aparam,
                              fitting.numb_fparam, fitting.numb_aparam, fitting.default_fparam)

    def call(self, coord: Any, atype: Any, box: Any = None, fparam: Any = None, aparam: Any = None,
             do_atomic_virial: bool = False) -> dict[str, np.ndarray]:
        """Same outputs as :meth:`dpmodel.model.EnergyModel.call`, as NumPy arrays."""
        inputs = self.prepare(coord, box, atype, fparam, aparam)
        out = {k: v.numpy() for k, v in self.call_lower(*(inputs[n] for n in INPUT_NAMES)).items()}
        if not do_atomic_virial:
            out.pop("atom_virial")
        return out

    def eval_descriptor(self, coord: Any, box: Any, atype: Any) -> np.ndarray:
        inputs = prepare_inputs(coord, box, atype, self.model.get_rcut(), self.model.get_sel())
        return self.descriptor_lower(inputs["coord_ext"], inputs["atype_ext"], inputs["nlist"]).numpy()
