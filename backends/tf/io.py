"""TensorFlow model files: ``.savedmodel`` (SavedModel directory) and ``.pb`` (frozen GraphDef).

Both carry the serialized envelope (``model``, ``model_def_script``, ...) exactly, as
JSON with every array base64-encoded bit for bit (:func:`encode`):

- ``X.savedmodel/``: a TF SavedModel of the lower interface (see :mod:`backends.tf.model`)
  with signatures ``serving_default`` (inputs ``coord_ext, atype_ext, nlist, mapping,
  fparam, aparam``; outputs ``energy, atom_energy, force, virial, atom_virial, mask``) and
  ``descriptor`` (inputs ``coord_ext, atype_ext, nlist``; output ``descriptor``); the
  envelope is the asset ``assets/model_dict.json``. Load with ``tf.saved_model.load``.
- ``X.pb``: a frozen ``GraphDef`` for ``tf.compat.v1.import_graph_def``: placeholders
  ``i_coord_ext, i_atype_ext, i_nlist, i_mapping, i_fparam, i_aparam``, outputs
  ``o_energy, o_atom_energy, o_force, o_virial, o_atom_virial, o_mask, o_descriptor``,
  and the envelope in the string constant ``dpmodel_attr/model_dict``.

``load`` also reads ``.pb`` files frozen by DeePMD-kit 3.x for se_e2_r energy models
(:mod:`backends.tf.deepmd_graph`). Writes are atomic (temporary sibling, then rename).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dpmodel.errors import ModelFileError
from dpmodel.io import atomic_write, envelope, map_variables

__all__ = ["Evaluator", "decode", "encode", "load", "save"]

PAYLOAD_ASSET = "model_dict.json"
PAYLOAD_NODE = "dpmodel_attr/model_dict"


# ------------------------------------------------------------------ exact JSON payload
def encode(data: dict) -> bytes:
    """``data`` as JSON bytes; arrays under ``@variables`` become exact base64 records."""
    def pack(value: Any) -> Any:
        if isinstance(value, (np.ndarray, np.generic)):
            array = np.array(value, order="C")
            little = array.astype(array.dtype.newbyteorder("<"), copy=False)
            return {"@is_variable": True, "dtype": array.dtype.name, "shape": list(array.shape),
                    "scalar": isinstance(value, np.generic), "base64": base64.b64encode(little.tobytes()).decode()}
        return value

    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(f"cannot store {type(value).__name__} in a model file")

    return json.dumps(map_variables(data, pack), default=plain).encode()


def decode(payload: bytes | str) -> dict:
    """Inverse of :func:`encode`."""
    def unpack(value: Any) -> Any:
        if isinstance(value, dict) and value.get("@is_variable") and "base64" in value:
            dtype = np.dtype(value["dtype"]).newbyteorder("<")
            array = np.frombuffer(base64.b64decode(value["base64"]), dtype=dtype).astype(value["dtype"])
            array = array.reshape(value["shape"])
            return array[()] if value.get("scalar") else array
        return value

    return map_variables(json.loads(payload), unpack)


# ------------------------------------------------------------------ load / save
def _suffix(path: str | Path) -> str:
    name = str(path).lower().rstrip("/")
    for suffix in (".savedmodel", ".pb"):
        if name.endswith(suffix):
            return suffix
    raise ModelFileError(f"{str(path)!r}: TensorFlow model files end in .savedmodel or .pb")


def load(path: str | Path) -> dict:
    """The envelope stored in a ``.savedmodel`` or ``.pb`` (or imported from a DeePMD-kit ``.pb``)."""
    if _suffix(path) == ".savedmodel":
        asset = Path(path) / "assets" / PAYLOAD_ASSET
        if not asset.is_file():
            raise ModelFileError(f"{str(path)!r} is not a SavedModel written by this backend (no {asset.name} asset)")
        return decode(asset.read_bytes())
    return _PbFile(path).data


def save(path: str | Path, data: dict) -> None:
    """Write the envelope ``data`` as a ``.savedmodel`` directory or a frozen ``.pb``, atomically."""
    from backends.tf.modules import EnergyModel
    from dpmodel.model_factory import model_from_dict

    suffix = _suffix(path)
    full = envelope(data)
    model = model_from_dict(full["model"], EnergyModel)
    payload = encode(full)
    if suffix == ".pb":
        from backends.tf.graph import frozen_graph_def

        graph_def = frozen_graph_def(model, payload, PAYLOAD_NODE)
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(graph_def.SerializeToString()))
    else:
        from backends.tf.graph import write_savedmodel

        _atomic_directory(path, lambda tmp: write_savedmodel(tmp, model, payload, PAYLOAD_ASSET))


def _atomic_directory(path: str | Path, write: Callable[[str], None]) -> None:
    """``write`` a directory under a temporary sibling name, then swap it into ``path``."""
    path = Path(str(path).rstrip("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists() or path.is_symlink():
        old = tempfile.mktemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if os.path.isdir(old) else os.unlink(old)


class _PbFile:
    """A ``.pb`` on disk: ours (payload constant) or DeePMD-kit's (graph constants)."""

    def __init__(self, path: str | Path) -> None:
        import tensorflow as tf

        from backends.tf.deepmd_graph import import_graph_def, is_deepmd_graph

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {str(path)!r} does not exist")
        self.graph_def = tf.compat.v1.GraphDef()
        try:
            self.graph_def.ParseFromString(path.read_bytes())
        except Exception as err:  # protobuf raises its own DecodeError
            raise ModelFileError(f"{str(path)!r} is not a TensorFlow GraphDef: {err}") from err
        payload = [n for n in self.graph_def.node if n.name == PAYLOAD_NODE]
        self.ours = bool(payload)
        if self.ours:
            self.data = decode(tf.make_ndarray(payload[0].attr["value"].tensor).item())
        elif is_deepmd_graph(self.graph_def):
            self.data = import_graph_def(self.graph_def, str(path))
        else:
            raise ModelFileError(f"{str(path)!r} is neither a frozen model of this backend (no {PAYLOAD_NODE!r}) "
                                 "nor a DeePMD-kit frozen model (no train_attr/training_script)")


# ------------------------------------------------------------------ evaluation
class Evaluator:
    """Evaluate a model file or an envelope dict.

    A ``.savedmodel`` runs its signatures, a ``.pb`` of ours its frozen graph, a DeePMD-kit
    ``.pb`` or ``data`` (an envelope) the model built from the dict, compiled by
    ``tf.function`` (``mode="function"``) or op by op (``mode="eager"``).
    """

    def __init__(self, path: str | Path | None = None, data: dict | None = None, mode: str = "function") -> None:
        from backends.tf import graph

        if mode not in ("function", "eager"):
            raise ValueError(f"Evaluator mode {mode!r}: expected 'function' or 'eager'")
        if (path is None) == (data is None):
            raise ValueError("Evaluator needs exactly one of a model file path or an envelope dict")
        if data is not None:
            self.data = data
            self._lower, self._descriptor = graph.model_functions(data["model"], eager=mode == "eager")
        elif _suffix(path) == ".savedmodel":
            self.data = load(path)
            self._lower, self._descriptor = graph.savedmodel_functions(path)
        else:
            pb = _PbFile(path)
            self.data = pb.data
            if pb.ours:
                self._lower, self._descriptor = graph.frozen_functions(pb.graph_def)
            else:
                self._lower, self._descriptor = graph.model_functions(self.data["model"], eager=mode == "eager")
        model = self.data["model"]
        self._rcut, self._sel = float(model["descriptor"]["rcut"]), list(model["descriptor"]["sel"])
        fitting = model["fitting"]
        self._fparam = (int(fitting.get("numb_fparam", 0)), int(fitting.get("numb_aparam", 0)),
                        fitting.get("default_fparam"))

    def evaluate(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray,
                 fparam: np.ndarray | None = None, aparam: np.ndarray | None = None,
                 atomic: bool = False) -> dict[str, np.ndarray]:
        """``energy`` (nf, 1), ``force`` (nf, nat, 3), ``virial`` (nf, 9), ``atom_energy`` (nf, nat, 1),
        ``mask`` (nf, nat) and, with ``atomic``, ``atom_virial`` (nf, nat, 9); NumPy."""
        from backends.tf.model import prepare_inputs

        numb_fparam, numb_aparam, default = self._fparam
        inputs = prepare_inputs(coord, box, atype, self._rcut, self._sel, fparam, aparam, numb_fparam,
                                numb_aparam, default)
        out = self._lower(inputs)
        if not atomic:
            out.pop("atom_virial")
        return out

    def eval_descriptor(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray) -> np.ndarray:
        """Descriptor of every atom, shape (nf, nat, ng)."""
        from backends.tf.model import prepare_inputs

        return self._descriptor(prepare_inputs(coord, box, atype, self._rcut, self._sel))
