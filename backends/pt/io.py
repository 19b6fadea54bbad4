"""PyTorch model files: ``.pth`` (TorchScript archive) and ``.pt`` (training checkpoint).

Both hold the envelope dict of :mod:`dpmodel.io` as JSON in which every array under
``@variables`` is a base64 ``.npy`` blob (dtype and shape exact, read with
``allow_pickle=False``), so ``load(save(path, d)) == d`` bit for bit.

- ``.pth``: ``torch.jit.save`` of :func:`backends.pt.scripted.script_model`; the JSON is
  the archive's extra file ``model.json``. ``torch.jit.load`` runs it without this package.
- ``.pt``: ``torch.save`` of ``{"@format", "@version", "envelope": <JSON str>,
  "train_state": {...}}``: only strings, numbers and tensors, so it loads with
  ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import base64
import io as _io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.pt.model import evaluate_lower
from backends.pt.modules import model_from_dict
from dpmodel.errors import ModelFileError
from dpmodel.io import atomic_write, envelope, map_variables
from dpmodel.neighbor import neighbor_data

__all__ = ["Evaluator", "load", "save", "decode", "encode", "save_checkpoint", "load_checkpoint"]

EXTRA_FILE = "model.json"
CHECKPOINT_FORMAT = "dpmodel-pt-checkpoint"


# ---------------------------------------------------------------------- JSON codec
def encode(data: dict) -> str:
    """The envelope as JSON, arrays under ``@variables`` as base64 ``.npy``."""

    def pack(value: Any) -> Any:
        if isinstance(value, (np.ndarray, np.generic)):
            buffer = _io.BytesIO()
            np.save(buffer, np.asarray(value), allow_pickle=False)
            return {"@is_variable": True, "@npy": base64.b64encode(buffer.getvalue()).decode("ascii"),
                    "@scalar": isinstance(value, np.generic)}
        return value

    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"cannot store a {type(value).__name__} outside @variables in a model file")

    return json.dumps(map_variables(data, pack), default=plain)


def decode(text: str) -> dict:
    """Inverse of :func:`encode`."""

    def unpack(value: Any) -> Any:
        if isinstance(value, dict) and "@npy" in value:
            array = np.load(_io.BytesIO(base64.b64decode(value["@npy"])), allow_pickle=False)
            return array[()] if value.get("@scalar") else array
        return value

    return map_variables(json.loads(text), unpack)


# ---------------------------------------------------------------------- files
def load(path: str | Path) -> dict:
    """The envelope dict of a ``.pth`` or ``.pt`` file (arrays as NumPy)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    if path.suffix.lower() == ".pt":
        return decode(_read_checkpoint(path)["envelope"])
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith(f"/extra/{EXTRA_FILE}")]
            if not names:
                raise ModelFileError(f"{str(path)!r} is a TorchScript archive without the extra file "
                                     f"{EXTRA_FILE!r}; it was not written by this package")
            return decode(archive.read(names[0]).decode("utf-8"))
    except zipfile.BadZipFile as err:
        raise ModelFileError(f"cannot read {str(path)!r}: not a TorchScript (.pth) archive ({err})") from err


def save(path: str | Path, data: dict) -> None:
    """Write ``data`` (plus the envelope keys) as ``.pth`` or ``.pt``, chosen by suffix."""
    path = Path(path)
    full = envelope(data)
    if path.suffix.lower() == ".pt":
        save_checkpoint(path, full)
        return
    if path.suffix.lower() != ".pth":
        raise ModelFileError(f"cannot write {str(path)!r}: PyTorch model files end in .pth or .pt")
    from backends.pt.scripted import script_model

    model = model_from_dict(full["model"])  # refusals of the pt backend, before anything is written
    program = script_model(model.to_dpmodel(), json.dumps(full.get("model_def_script")))
    text = encode(full)
    atomic_write(path, lambda tmp: torch.jit.save(program, tmp, _extra_files={EXTRA_FILE: text}))


def save_checkpoint(path: str | Path, data: dict, train_state: dict | None = None) -> None:
    """Write a ``.pt`` checkpoint: the envelope and an optional train state of tensors/numbers."""
    payload = {"@format": CHECKPOINT_FORMAT, "@version": 1, "envelope": encode(data),
               "train_state": train_state or {}}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """``(envelope, train_state)`` of a ``.pt`` checkpoint."""
    payload = _read_checkpoint(Path(path))
    return decode(payload["envelope"]), payload.get("train_state", {})


def _read_checkpoint(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for foreign or damaged files
        raise ModelFileError(f"cannot read checkpoint {str(path)!r}: {err}") from err
    if not isinstance(payload, dict) or payload.get("@format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a checkpoint of this package (no @format {CHECKPOINT_FORMAT!r})")
    return payload


# ---------------------------------------------------------------------- evaluation
def default_device() -> torch.device:
    """``cuda`` (``cuda:$LOCAL_RANK`` under torchrun) when available, else ``cpu``.

    ``DEVICE=cpu`` in the environment forces the CPU (DeePMD-kit's convention).
    """
    import os

    if os.environ.get("DEVICE", "").lower() == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


#: systems of up to this many atoms run a ``.pth`` file's own program by default: its all-pairs
#: neighbour search beats the host cell list up to a few hundred atoms (equal near 768 on 2 CPU cores)
PROGRAM_MAX_ATOMS = 512


class Evaluator:
    """Evaluates a ``.pth``/``.pt`` file (or an envelope) with the torch wrappers of dpmodel.

    The neighbour list is built on the host with dpmodel (NumPy; O(N) cell list for large
    systems), energies and autograd forces run on ``device``. ``program=True`` runs the
    ``.pth`` file's TorchScript program instead (what ``torch.jit.load`` users get),
    ``program=False`` never; by default a ``.pth`` of ours runs its program for systems of
    at most :data:`PROGRAM_MAX_ATOMS` atoms, unless its tables check for overflows (which
    only the eager path reports).
    """

    def __init__(self, path: str | Path | None = None, data: dict | None = None,
                 device: str | torch.device | None = None, program: bool | None = None) -> None:
        self.data = load(path) if data is None else data
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model_from_dict(self.data["model"]).to(self.device).eval()
        self.program, self.program_max_atoms = None, 0
        is_pth = path is not None and Path(path).suffix.lower() == ".pth"
        if program and not is_pth:
            raise ModelFileError("program=True needs a .pth file")
        checks = any(t is not None and t.info.check_frequency > 0 for t in (self.model.descriptor.tables or []))
        if program or (program is None and is_pth and not checks):
            loaded = torch.jit.load(str(path), map_location=self.device)
            if program or hasattr(loaded, "neighbors"):  # by default only a program written here
                self.program = loaded
                self.program_max_atoms = PROGRAM_MAX_ATOMS if program is None else None

    def _tensor(self, array: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor | None:
        return None if array is None else torch.as_tensor(np.array(array), dtype=dtype, device=self.device)

    def evaluate(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray,
                 fparam: np.ndarray | None = None, aparam: np.ndarray | None = None,
                 atomic: bool = False) -> dict[str, np.ndarray]:
        """Energy (nf, 1), force (nf, nat, 3), virial (nf, 9), atom_energy (nf, nat, 1) and,
        with ``atomic``, atom_virial (nf, nat, 9) of ``coord`` (nf, nat, 3) Å; NumPy float64."""
        coord = np.asarray(coord, dtype=np.float64)
        atype = np.asarray(atype, dtype=np.int64)
        box = None if box is None else np.asarray(box, dtype=np.float64)
        fparam, aparam = self._tensor(fparam), self._tensor(aparam)
        with warnings.catch_warnings():  # a compressed model's CSR products: PyTorch's beta notice
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            if self.program is not None and (self.program_max_atoms is None or atype.shape[-1] <= self.program_max_atoms):
                out = self.program(self._tensor(coord), self._tensor(atype, torch.int64), self._tensor(box),
                                   fparam, aparam, atomic)
            else:
                ext = neighbor_data(coord, atype, box, self.model.get_rcut(), self.model.get_sel())
                coord_ext, atype_ext, mapping, nlist = (self._tensor(a, t) for a, t in
                                                        zip(ext, (torch.float64, torch.int64, torch.int64, torch.int64)))
                out = evaluate_lower(self.model, coord_ext, atype_ext, nlist, mapping, fparam, aparam, atomic)
        keys = ["energy", "force", "virial", "atom_energy"] + (["atom_virial"] if atomic else [])
        return {key: out[key].detach().cpu().numpy() for key in keys}

    def eval_descriptor(self, coord: np.ndarray, box: np.ndarray | None, atype: np.ndarray) -> np.ndarray:
        """Descriptor of every atom, (nf, nat, ng), float64."""
        desc = self.model.descriptor
        ext = neighbor_data(np.asarray(coord, np.float64), np.asarray(atype, np.int64),
                            None if box is None else np.asarray(box, np.float64), desc.get_rcut(), desc.get_sel())
        coord_ext, atype_ext, _, nlist = (self._tensor(a, t) for a, t in
                                          zip(ext, (torch.float64, torch.int64, torch.int64, torch.int64)))
        with torch.no_grad():
            return desc.call(coord_ext, atype_ext, nlist).cpu().numpy()
