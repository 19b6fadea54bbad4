"""JAX model files ``.jax`` and ``.hlo``, and their evaluator.

Both are HDF5 files in the layout of dpmodel's ``.dp`` (SPEC 4.7): the envelope dict
(``software``, ``version``, ``time``, ``model``, ``model_def_script``...) as the root
attribute ``json`` with every ``@variables`` array stored as a root dataset
``variable_NNNN``. So :func:`load` returns exactly the dict that was saved (plus the
envelope keys), and the parameters are the dict's arrays (no pickle anywhere). A
group ``/jax`` adds what is JAX-specific:

- attribute ``info``: JSON ``{"backend": "JAX", "jax_version", "format": "jax"|"hlo",
  "format_version": 1}``; for ``.hlo`` also ``constants`` (``type_map``, ``rcut``, ``sel``,
  ``dim_fparam``, ``dim_aparam``, ``default_fparam``, ``dim_descriptor``) and the
  signatures of the programs;
- ``.hlo`` only: datasets ``stablehlo_lower`` and ``stablehlo_descriptor`` (uint8): two
  ``jax.export`` programs (serialized StableHLO, platforms cpu and cuda) with the
  parameters baked in and symbolic ``nf``, ``nloc``, ``nall`` (any frame count, atom
  count and ghost count; ``nnei`` is fixed by ``sel``)::

      lower(coord_ext f64[nf,nall,3], atype_ext i64[nf,nall], nlist i64[nf,nloc,nnei],
            mapping i64[nf,nall][, fparam f64[nf,dim_fparam]][, aparam f64[nf,nloc,dim_aparam]])
        -> {energy [nf,1], atom_energy [nf,nloc,1], force [nf,nloc,3], virial [nf,9],
            atom_virial [nf,nloc,9], mask i32[nf,nloc]}
      descriptor(coord_ext, atype_ext, nlist) -> f64[nf,nloc,ng]

  Evaluating a ``.hlo`` file deserializes these programs (``jax.export.deserialize``)
  and builds the neighbour list with dpmodel's NumPy code; no model class is built.
  The programs of a compressed model evaluate its tables but do not count table
  overflows (``check_frequency``): a serialized program holds no host callback.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from jax import export

from backends.jax.compiler import jit
from backends.jax.model import TRACES, frame_params, lower_outputs, descriptor_outputs, neighbor_inputs
from backends.jax.modules import EnergyModel, get_params, x64
from dpmodel.errors import ModelFileError
from dpmodel.io import atomic_write, envelope, read_tree, write_tree
from dpmodel.model_factory import model_from_dict
from dpmodel.table import TabulatedEmbedding

__all__ = ["Evaluator", "export_model", "load", "save"]

FORMAT_VERSION = 1
EXPORT_PLATFORMS = ("cpu", "cuda")
_SUFFIXES = (".jax", ".hlo")
_OUTPUT_KEYS = ("energy", "force", "virial", "atom_energy")


def _suffix(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ModelFileError(f"{str(path)!r} is not a JAX model file; JAX model files end in .jax or .hlo")
    return suffix


def _jax_model(data: dict) -> EnergyModel:
    if not isinstance(data, dict) or "model" not in data:
        raise ModelFileError("a model file dict needs a 'model' key holding the serialized model")
    return model_from_dict(data["model"], EnergyModel)


# ---------------------------------------------------------------------- export
def export_model(model: EnergyModel) -> tuple[dict[str, bytes], dict]:
    """Serialized ``jax.export`` programs of ``model`` (parameters baked in) and their signatures.

    Returns
    -------
    ``({"stablehlo_lower": bytes, "stablehlo_descriptor": bytes}, signatures)``
    """
    dim_fparam, dim_aparam = _dims(model)
    model = _without_overflow_checks(model)
    params = get_params(model)
    nnei = model.descriptor.nnei
    with x64():
        nf, nall, nloc = export.symbolic_shape("nf, nall, nloc", constraints=("nall >= nloc",))
        base = [jax.ShapeDtypeStruct((nf, nall, 3), jnp.float64), jax.ShapeDtypeStruct((nf, nall), jnp.int64),
                jax.ShapeDtypeStruct((nf, nloc, nnei), jnp.int64)]
        extra = []
        if dim_fparam:
            extra.append(jax.ShapeDtypeStruct((nf, dim_fparam), jnp.float64))
        if dim_aparam:
            extra.append(jax.ShapeDtypeStruct((nf, nloc, dim_aparam), jnp.float64))

        def lower(coord_ext, atype_ext, nlist, mapping, *more):
            fparam = more[0] if dim_fparam else None
            aparam = more[-1] if dim_aparam else None
            return lower_outputs(model, params, coord_ext, atype_ext, nlist, mapping, fparam, aparam, True)

        def descriptor(coord_ext, atype_ext, nlist):
            return descriptor_outputs(model, params, coord_ext, atype_ext, nlist)

        mapping = jax.ShapeDtypeStruct((nf, nall), jnp.int64)
        programs = {"stablehlo_lower": _export(lower, *base, mapping, *extra),
                    "stablehlo_descriptor": _export(descriptor, *base)}
    inputs = ["coord_ext f64[nf,nall,3]", "atype_ext i64[nf,nall]", f"nlist i64[nf,nloc,{nnei}]",
              "mapping i64[nf,nall]"]
    inputs += [f"fparam f64[nf,{dim_fparam}]"] * bool(dim_fparam) + [f"aparam f64[nf,nloc,{dim_aparam}]"] * bool(dim_aparam)
    signatures = {"stablehlo_lower": {"inputs": inputs, "outputs": ["energy", "atom_energy", "force", "virial",
                                                                     "atom_virial", "mask"]},
                  "stablehlo_descriptor": {"inputs": inputs[:3], "outputs": ["descriptor"]}}
    return programs, signatures


def _without_overflow_checks(model: EnergyModel) -> EnergyModel:
    """A copy whose tables do not count overflows: a serialized program holds no host callback."""
    tables = getattr(model.descriptor, "tables", None)
    if not tables or all(t is None or t.info.check_frequency <= 0 for t in tables):
        return model
    unchecked = [None if t is None else TabulatedEmbedding(t.data, dataclasses.replace(t.info, check_frequency=-1))
                 for t in tables]
    model = copy.copy(model)
    model.descriptor = copy.copy(model.descriptor)
    model.descriptor.tables = unchecked
    return model


def _export(fn, *specs) -> bytes:
    try:
        exported = export.export(jax.jit(fn), platforms=EXPORT_PLATFORMS)(*specs)
    except Exception:  # a jaxlib without the cuda lowering rules: export for this platform only
        exported = export.export(jax.jit(fn))(*specs)
    return bytes(exported.serialize())


def _dims(model: EnergyModel) -> tuple[int, int]:
    fitting = model.fitting
    return fitting.numb_fparam, (0 if fitting.use_aparam_as_mask else fitting.numb_aparam)


def _constants(model: EnergyModel) -> dict:
    dim_fparam, dim_aparam = _dims(model)
    default = model.fitting.default_fparam
    return {"type_map": model.get_type_map(), "rcut": model.get_rcut(), "sel": model.get_sel(),
            "dim_fparam": dim_fparam, "dim_aparam": dim_aparam,
            "default_fparam": None if default is None else np.asarray(default, dtype=np.float64).tolist(),
            "dim_descriptor": model.descriptor.dim_out}


# ---------------------------------------------------------------------- files
def save(path: str | Path, data: dict) -> None:
    """Write the envelope dict ``data`` as ``.jax`` or ``.hlo`` (atomically).

    The model is built with the JAX classes first, so options JAX refuses
    (``type_one_side = false``) fail here with the capabilities error.
    """
    suffix = _suffix(path)
    model = _jax_model(data)
    info = {"backend": "JAX", "jax_version": jax.__version__, "format": suffix[1:], "format_version": FORMAT_VERSION}
    programs: dict[str, bytes] = {}
    if suffix == ".hlo":
        programs, signatures = export_model(model)
        info.update(constants=_constants(model), programs=signatures, platforms=list(EXPORT_PLATFORMS))
    full = envelope(data)
    atomic_write(path, lambda tmp: _write_hdf5(tmp, full, info, programs))


def load(path: str | Path) -> dict:
    """The envelope dict of a ``.jax`` / ``.hlo`` file (arrays as NumPy), exactly as saved."""
    _suffix(path)
    return _read_hdf5(Path(path))[0]


def _write_hdf5(filename: str, data: dict, info: dict, programs: dict[str, bytes]) -> None:
    with h5py.File(filename, "w") as f:
        write_tree(f, data)
        group = f.create_group("jax")
        group.attrs["info"] = json.dumps(info, separators=(",", ":"))
        for name, blob in programs.items():
            group.create_dataset(name, data=np.frombuffer(blob, dtype=np.uint8))


def _read_hdf5(path: Path, programs: bool = False) -> tuple[dict, dict, dict[str, bytes]]:
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if "json" not in f.attrs or "jax" not in f:
                raise ModelFileError(f"{str(path)!r} is not a JAX model file (no 'json' attribute or '/jax' group)")
            data = read_tree(f, path)
            info = json.loads(f["jax"].attrs["info"])
            blobs = {name: f["jax"][name][()].tobytes() for name in f["jax"]} if programs else {}
    except OSError as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"cannot read model file {str(path)!r}: {err}") from err
    return data, info, blobs


# ---------------------------------------------------------------------- evaluation
class Evaluator:
    """Evaluator of ``.jax`` (jit-compiled model) and ``.hlo`` (exported program) files.

    Parameters
    ----------
    path : a ``.jax`` or ``.hlo`` file
    data : an envelope dict instead of ``path`` (evaluated like ``.jax``)
    """

    def __init__(self, path: str | Path | None = None, data: dict | None = None) -> None:
        if data is not None:
            self.data, self._engine = data, _JitEngine(_jax_model(data))
            return
        suffix = _suffix(path)
        self.data, info, blobs = _read_hdf5(Path(path), programs=suffix == ".hlo")
        self._engine = _ExportEngine(info, blobs) if suffix == ".hlo" else _JitEngine(_jax_model(self.data))

    def evaluate(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray, fparam: Any = None,
                 aparam: Any = None, atomic: bool = False) -> dict[str, np.ndarray]:
        """NumPy ``energy`` (nf, 1), ``force`` (nf, nat, 3), ``virial`` (nf, 9), ``atom_energy`` (nf, nat, 1), and
        ``atom_virial`` (nf, nat, 9) with ``atomic``; ``coord`` (nf, nat, 3) Å, ``box`` (nf, 9) Å or None."""
        out = self._engine.evaluate(np.asarray(coord, dtype=np.float64), box, np.asarray(atype, dtype=np.int64),
                                    fparam, aparam, atomic)
        keys = _OUTPUT_KEYS + (("atom_virial",) if atomic else ())
        return {k: np.asarray(out[k]) for k in keys}

    def eval_descriptor(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray) -> np.ndarray:
        """Descriptor (nf, nat, ng) of ``coord`` (nf, nat, 3) Å."""
        return self._engine.descriptor(np.asarray(coord, dtype=np.float64), box, np.asarray(atype, dtype=np.int64))


class _JitEngine:
    def __init__(self, model: EnergyModel) -> None:
        self.runner = model.runner()

    def evaluate(self, coord, box, atype, fparam, aparam, atomic):
        return self.runner.call(coord, atype, box, fparam, aparam, atomic)

    def descriptor(self, coord, box, atype):
        return self.runner.descriptor(coord, atype, box)


class _ExportEngine:
    """Runs the deserialized programs; knows the model only through ``info['constants']``."""

    def __init__(self, info: dict, blobs: dict[str, bytes]) -> None:
        missing = [k for k in ("stablehlo_lower", "stablehlo_descriptor") if k not in blobs]
        if missing or "constants" not in info:
            raise ModelFileError(f".hlo file lacks {missing or ['constants']}; re-create it with the JAX backend")
        self.constants = info["constants"]
        self._lower = _counted(export.deserialize(bytearray(blobs["stablehlo_lower"])), "hlo_lower")
        self._descriptor = _counted(export.deserialize(bytearray(blobs["stablehlo_descriptor"])), "hlo_descriptor")

    def _inputs(self, coord, box, atype):
        return neighbor_inputs(coord, atype, None if box is None else np.asarray(box, dtype=np.float64),
                               self.constants["rcut"], self.constants["sel"])

    def evaluate(self, coord, box, atype, fparam, aparam, atomic):
        nf, nloc = atype.shape
        inputs = self._inputs(coord, box, atype)
        c = self.constants
        fp, ap = frame_params(nf, nloc, fparam, aparam, c["dim_fparam"], c["dim_aparam"], c["default_fparam"])
        extra = [a for a in (fp, ap) if a is not None]
        with x64():
            out = self._lower(*(jnp.asarray(inputs[k]) for k in ("coord_ext", "atype_ext", "nlist", "mapping")),
                              *(jnp.asarray(a) for a in extra))
            return {k: np.asarray(v) for k, v in out.items()}

    def descriptor(self, coord, box, atype):
        inputs = self._inputs(coord, box, atype)
        with x64():
            return np.asarray(self._descriptor(*(jnp.asarray(inputs[k]) for k in ("coord_ext", "atype_ext", "nlist"))))


def _counted(exported: export.Exported, name: str):
    def call(*args):
        TRACES[name] += 1
        return exported.call(*args)

    return jit(call)
