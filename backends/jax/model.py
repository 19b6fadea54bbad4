"""Energy, forces and virials of the se_e2_r model by JAX autodiff, under ``jax.jit``.

The energy is dpmodel's :meth:`~dpmodel.model.EnergyModel.atomic_energy_from_pairs`, a
pure function of the parameter pytree (:func:`backends.jax.modules.bind`) and the pair
displacements ``diff``; ``jax.value_and_grad`` with respect to ``diff`` feeds
:func:`dpmodel.forces.forces_and_virials`.

Static shapes: the neighbour list is built on the host with NumPy
(:func:`dpmodel.neighbor.neighbor_data`), outside the compiled function, whose shapes
are ``(nf, nloc, nall, nnei)``. For one system ``nloc`` and ``nnei = sum(sel)`` are fixed
and ``nall = ns * nloc`` changes only when a face distance of the cell crosses
``rcut / k`` (a new image shell); ghosts given from outside (``call_lower``, e.g. an
MD code's ghosts within ``rcut``) vary every frame, so ``nall`` is padded to a bucket
(:func:`padded_size`, at most 4 buckets per doubling) with inert ghosts (type -1, in no
list). The frames of one system therefore reuse one compilation. :data:`TRACES` counts
Python traces (= compilations) of each jitted function.

:func:`energy_fn` is the jax-md style ``(positions, box) -> energy`` with a neighbour
list built inside the trace from a fixed set of periodic images.
"""

from __future__ import annotations

import collections
import json
import math
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from backends.jax.compiler import jit
from backends.jax.modules import EnergyModel, Params, bind, get_params, x64
from dpmodel.env_mat import pair_displacements
from dpmodel.forces import forces_and_virials
from dpmodel.neighbor import build_neighbor_list, extend_coord_with_ghosts, neighbor_data, shift_grid
from dpmodel.region import face_distances, wrap_coord

__all__ = ["TRACES", "Runner", "Structure", "descriptor_outputs", "energy_fn", "lower_outputs", "neighbor_inputs",
           "pad_extended", "padded_size"]

TRACES: collections.Counter = collections.Counter()
"""Number of times each jitted function of this module was traced (one trace = one compilation)."""

OUTPUT_KEYS = ("energy", "atom_energy", "force", "virial", "mask", "atom_virial")


# ---------------------------------------------------------------------- pure functions
def lower_outputs(model: EnergyModel, params: Params, coord_ext: Any, atype_ext: Any, nlist: Any, mapping: Any,
                  fparam: Any = None, aparam: Any = None, atomic: bool = False,
                  type_blocks: tuple[int, ...] | None = None, widths: tuple[int, ...] | None = None) -> dict:
    """Outputs of dpmodel's ``call_lower`` with forces from ``jax.grad`` (traceable, pure in ``params``).

    ``type_blocks``: atom counts per type of frames whose local atoms are sorted by type
    (:func:`dpmodel.fitting.type_blocks`; static), each fitting net then on its own atoms only.
    ``widths``: slots per type block of an ``nlist`` cut by :func:`dpmodel.neighbor.cut_neighbor_list`
    (static; the dropped slots were padding, their constant embedding is added back).

    Parameters
    ----------
    coord_ext : shape (nf, nall, 3), float64; Å
    atype_ext : shape (nf, nall), int; -1 for virtual or padding atoms
    nlist : shape (nf, nloc, nnei), int; -1 for empty slots
    mapping : shape (nf, nall), int

    Returns
    -------
    dict with ``energy`` (nf, 1), ``atom_energy`` (nf, nloc, 1), ``force`` (nf, nloc, 3),
    ``virial`` (nf, 9), ``mask`` (nf, nloc) and, with ``atomic``, ``atom_virial`` (nf, nloc, 9).
    """
    bound = bind(model, params)
    nlist = bound.exclude_pairs(atype_ext, nlist)
    diff = pair_displacements(jnp.reshape(coord_ext, (nlist.shape[0], -1, 3)), nlist)

    def total(pairs):
        atom_energy, mask = bound.atomic_energy_from_pairs(pairs, atype_ext, nlist, fparam, aparam,
                                                           widths=None if widths is None else list(widths),
                                                           type_blocks=type_blocks, split_types=False)
        return jnp.sum(atom_energy), (atom_energy, mask)

    (_, (atom_energy, mask)), pair_grad = jax.value_and_grad(total, has_aux=True)(diff)
    force, virial, atom_virial = forces_and_virials(pair_grad, diff, nlist, mapping, atomic)
    out = {"energy": jnp.sum(atom_energy, axis=1), "atom_energy": atom_energy, "force": force,
           "virial": virial, "mask": mask}
    if atomic:
        out["atom_virial"] = atom_virial
    return out


def descriptor_outputs(model: EnergyModel, params: Params, coord_ext: Any, atype_ext: Any, nlist: Any) -> Any:
    """The descriptor (nf, nloc, ng), float64, as dpmodel's ``DescrptSeR.call`` (traceable)."""
    return bind(model, params).descriptor.call(coord_ext, atype_ext, nlist)


# ---------------------------------------------------------------------- host-side neighbour list
def padded_size(n: int) -> int:
    """``n`` rounded up to a bucket: a multiple of ``2**(floor(log2 n) - 2)`` (at most 25% padding)."""
    if n <= 4:
        return max(n, 1)
    step = 2 ** max(int(math.floor(math.log2(n))) - 2, 0)
    return -(-n // step) * step


def neighbor_inputs(coord: np.ndarray, atype: np.ndarray, box: np.ndarray | None, rcut: float,
                    sel: list[int]) -> dict[str, np.ndarray]:
    """Extended atoms, mapping and neighbour list on the host, ``nall`` padded by :func:`padded_size`.

    Parameters
    ----------
    coord : shape (nf, nloc, 3), float; Å
    atype : shape (nf, nloc), int
    box : shape (nf, 9) or None; Å

    Returns
    -------
    dict of NumPy arrays ``coord_ext`` (nf, nall', 3), ``atype_ext`` (nf, nall'),
    ``nlist`` (nf, nloc, nnei), ``mapping`` (nf, nall'); padding atoms have type -1,
    coordinates 0 and mapping 0 and appear in no neighbour list.
    """
    nf, nloc = atype.shape
    coord = np.asarray(coord, dtype=np.float64).reshape(nf, nloc, 3)
    atype = np.asarray(atype, dtype=np.int64)
    box = None if box is None else np.asarray(box, dtype=np.float64).reshape(nf, 9)
    coord_ext, atype_ext, mapping, nlist = neighbor_data(coord, atype, box, rcut, sel)
    coord_ext, atype_ext, mapping = pad_extended(coord_ext, atype_ext, mapping)
    return {"coord_ext": coord_ext, "atype_ext": atype_ext, "nlist": np.ascontiguousarray(nlist, np.int64),
            "mapping": mapping}


def pad_extended(coord_ext: np.ndarray, atype_ext: np.ndarray,
                 mapping: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Extended atoms padded to ``padded_size(nall)`` with inert ghosts (type -1, at 0, mapped to 0).

    A padding atom is in no neighbour list, so it changes no output; it only keeps
    ``nall`` on a few buckets when the ghost count varies from frame to frame.

    Returns
    -------
    coord_ext (nf, nall', 3) float64, atype_ext (nf, nall') int64, mapping (nf, nall') int64
    """
    nf, nall = np.shape(atype_ext)
    coord_ext = np.asarray(coord_ext, dtype=np.float64).reshape(nf, nall, 3)
    atype_ext, mapping = np.asarray(atype_ext, dtype=np.int64), np.asarray(mapping, dtype=np.int64)
    pad = padded_size(nall) - nall
    if pad:
        coord_ext = np.concatenate([coord_ext, np.zeros((nf, pad, 3))], axis=1)
        atype_ext = np.concatenate([atype_ext, np.full((nf, pad), -1, dtype=np.int64)], axis=1)
        mapping = np.concatenate([mapping, np.zeros((nf, pad), dtype=np.int64)], axis=1)
    return np.ascontiguousarray(coord_ext), np.ascontiguousarray(atype_ext), np.ascontiguousarray(mapping)


def frame_params(nf: int, nloc: int, fparam: Any, aparam: Any, dim_fparam: int, dim_aparam: int,
                 default_fparam: Any = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``fparam`` (nf, dim_fparam) and ``aparam`` (nf, nloc, dim_aparam) as float64 NumPy, or None if unused."""
    if dim_fparam:
        if fparam is None and default_fparam is not None:
            fparam = np.tile(np.asarray(default_fparam, dtype=np.float64), (nf, 1))
        if fparam is None:
            raise ValueError(f"this model needs fparam of shape (nframes, {dim_fparam}); none was given")
        fparam = np.asarray(fparam, dtype=np.float64).reshape(nf, dim_fparam)
    else:
        fparam = None
    if dim_aparam:
        if aparam is None:
            raise ValueError(f"this model needs aparam of shape (nframes, natoms, {dim_aparam}); none was given")
        aparam = np.asarray(aparam, dtype=np.float64).reshape(nf, nloc, dim_aparam)
    else:
        aparam = None
    return fparam, aparam


# ---------------------------------------------------------------------- compiled evaluator
class Structure:
    """A model's hyper-parameters as a hashable static argument of ``jax.jit``.

    Two models with equal serialized dicts up to array values (same options, shapes and
    dtypes) compare equal, so they share compilations: a reloaded or retrained model
    does not recompile. ``template`` holds the model objects without their arrays.
    """

    def __init__(self, model: EnergyModel) -> None:
        params = get_params(model)
        self.template = bind(model, jax.tree.map(lambda _: None, params))
        self.key = (type(model).__qualname__, json.dumps(_skeleton(model.serialize()), sort_keys=True, default=str))

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Structure) and self.key == other.key


def _skeleton(tree: Any, key: str | None = None) -> Any:
    """``tree`` with arrays replaced by ``[shape, dtype]``, except the table bounds (``compress_info``),
    which the tabulated embedding uses as Python numbers and so belong to the structure."""
    if isinstance(tree, dict):
        return {k: _skeleton(v, k) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_skeleton(v, key) for v in tree]
    if isinstance(tree, (np.ndarray, np.generic)):
        array = np.asarray(tree)
        return array.tolist() if key == "compress_info" else [list(array.shape), str(array.dtype)]
    return tree


@partial(jit, static_argnames=("structure", "atomic", "blocks"))
def _lower_jit(structure, params, coord_ext, atype_ext, nlist, mapping, fparam, aparam, atomic, blocks=None):
    TRACES["lower"] += 1
    return lower_outputs(structure.template, params, coord_ext, atype_ext, nlist, mapping, fparam, aparam, atomic,
                         blocks)


@partial(jit, static_argnames=("structure",))
def _descriptor_jit(structure, params, coord_ext, atype_ext, nlist):
    TRACES["descriptor"] += 1
    return descriptor_outputs(structure.template, params, coord_ext, atype_ext, nlist)


class Runner:
    """Jit-compiled energy/force/virial and descriptor of one :class:`~backends.jax.modules.EnergyModel`.

    The parameters are arguments of the compiled functions, not constants, and the
    compilations are keyed by :class:`Structure`: every model of the same structure
    and every frame of the same padded shape reuse one compilation.
    """

    def __init__(self, model: EnergyModel, params: Params | None = None) -> None:
        self.model = model
        self.params = get_params(model) if params is None else params
        self.structure = Structure(model)
        fitting = model.fitting
        self.dims = (fitting.numb_fparam, fitting.numb_aparam if not fitting.use_aparam_as_mask else 0)

    def lower(self, coord_ext, atype_ext, nlist, mapping, fparam=None, aparam=None, atomic: bool = False,
              type_blocks: tuple[int, ...] | None = None) -> dict:
        """:func:`lower_outputs` compiled, outputs as jax arrays.

        NumPy inputs (e.g. ghosts built by an MD code, whose count varies) are padded by
        :func:`pad_extended` first; JAX arrays are used as given (no host round trip).
        ``type_blocks`` as in :func:`lower_outputs` (a compilation per value).
        """
        if all(isinstance(a, np.ndarray) for a in (coord_ext, atype_ext, mapping)):
            coord_ext, atype_ext, mapping = pad_extended(coord_ext, atype_ext, mapping)
        with x64():
            args = [jnp.asarray(a) for a in (coord_ext, atype_ext, nlist, mapping)]
            args[0] = args[0].astype(jnp.float64)
            fp = None if fparam is None else jnp.asarray(fparam, dtype=jnp.float64)
            ap = None if aparam is None else jnp.asarray(aparam, dtype=jnp.float64)
            return _lower_jit(self.structure, self.params, *args, fp, ap, atomic=bool(atomic), blocks=type_blocks)

    def call(self, coord, atype, box=None, fparam=None, aparam=None, atomic: bool = False,
             as_numpy: bool = True) -> dict:
        """Whole frames: ``coord`` (nf, nloc, 3) Å, ``atype`` (nf, nloc), ``box`` (nf, 9) or None.

        Returns the outputs of :func:`lower_outputs` (NumPy unless ``as_numpy=False``).
        """
        atype = np.asarray(atype, dtype=np.int64)
        nf, nloc = atype.shape
        inputs = neighbor_inputs(np.asarray(coord), atype, None if box is None else np.asarray(box),
                                 self.model.get_rcut(), self.model.get_sel())
        fparam, aparam = frame_params(nf, nloc, fparam, aparam, *self.dims, self.model.fitting.default_fparam)
        out = self.lower(inputs["coord_ext"], inputs["atype_ext"], inputs["nlist"], inputs["mapping"],
                         fparam, aparam, atomic, self.model.fitting.blocks_of(atype))  # each fitting net on its atoms
        return {k: np.asarray(v) for k, v in out.items()} if as_numpy else out

    def descriptor(self, coord, atype, box=None) -> np.ndarray:
        """Descriptor of whole frames, NumPy (nf, nloc, ng)."""
        atype = np.asarray(atype, dtype=np.int64)
        inputs = neighbor_inputs(np.asarray(coord), atype, None if box is None else np.asarray(box),
                                 self.model.get_rcut(), self.model.get_sel())
        with x64():
            out = _descriptor_jit(self.structure, self.params, jnp.asarray(inputs["coord_ext"]),
                                  jnp.asarray(inputs["atype_ext"]), jnp.asarray(inputs["nlist"]))
            return np.asarray(out)


# ---------------------------------------------------------------------- jax-md style energy
def energy_fn(model: EnergyModel, atype: Any, images: int | tuple[int, int, int] = 1, fparam: Any = None,
              aparam: Any = None) -> Callable[..., Any]:
    """A jax-md style energy ``fn(positions, box=None) -> energy`` of one configuration.

    Parameters
    ----------
    model : a JAX :class:`~backends.jax.modules.EnergyModel`; its parameters are constants of ``fn``.
    atype : shape (natoms,), int; fixed for the returned function.
    images : periodic images searched along each lattice vector (int or 3 ints). The
        ghost set (``prod(2 * images + 1) * natoms`` atoms) is fixed so ``fn`` has
        static shapes; it is complete while every face distance of ``box`` times
        ``images`` reaches ``rcut``. Otherwise ``fn`` returns NaN rather than a
        silently wrong energy.
    fparam : shape (numb_fparam,), optional
    aparam : shape (natoms, numb_aparam), optional

    Returns
    -------
    ``fn(positions (natoms, 3) Å, box (3, 3) Å or None) -> energy`` (scalar, eV), jit-compiled,
    pure and differentiable in ``positions`` and ``box`` (``jax.grad``, ``jax.jacfwd``), and
    traceable inside the caller's ``jax.jit`` / ``lax`` loops.
    The body runs in float64 (:func:`~backends.jax.modules.x64`) whatever the global
    ``jax_enable_x64``. Positions are Cartesian and ``box`` rows are lattice vectors (jax-md's
    ``box`` holds them as columns: pass its transpose). With
    jax-md use ``space.periodic_general(box, fractional_coordinates=False)`` and pass
    ``box=`` through ``simulate`` keyword arguments. The neighbour search is all-pairs
    over the fixed images inside the trace, O(natoms^2 * images^3): meant for small systems.
    """
    atype_np = np.asarray(atype, dtype=np.int64).reshape(1, -1)
    natoms = atype_np.shape[1]
    nbuff = (images,) * 3 if isinstance(images, int) else tuple(int(i) for i in images)
    shifts = shift_grid(nbuff)
    rcut, sel = model.get_rcut(), model.get_sel()
    fp, ap = frame_params(1, natoms, fparam, aparam, model.fitting.numb_fparam,
                          model.fitting.numb_aparam if not model.fitting.use_aparam_as_mask else 0,
                          model.fitting.default_fparam)

    def fn(positions: Any, box: Any = None) -> Any:
        with x64():
            coord = jnp.reshape(jnp.asarray(positions, dtype=jnp.float64), (1, natoms, 3))
            types = jnp.asarray(atype_np)
            cell = None if box is None else jnp.reshape(jnp.asarray(box, dtype=jnp.float64), (1, 9))
            if cell is not None:
                coord = wrap_coord(coord, cell)
            coord_ext, atype_ext, _ = extend_coord_with_ghosts(coord, types, cell, rcut, shifts)
            nlist = build_neighbor_list(jax.lax.stop_gradient(coord_ext), atype_ext, natoms, rcut, sel)
            atom_energy, _ = model.atomic_energy(coord_ext, atype_ext, nlist, None if fp is None else jnp.asarray(fp),
                                                 None if ap is None else jnp.asarray(ap))
            energy = jnp.sum(atom_energy)
            if cell is None:
                return energy
            complete = jnp.all(face_distances(cell) * jnp.asarray(nbuff, dtype=jnp.float64) >= rcut)
            return jnp.where(complete, energy, jnp.nan)

    return jax.jit(fn)  # no compiler options: it runs nested in the caller's jax.jit
