"""Training checkpoints: one ``.dp`` (HDF5) file per save, readable by every backend.

A checkpoint is a :mod:`dpmodel.io` envelope::

    model              the model dict (so ``dp test`` / ``dp freeze`` read it directly)
    model_def_script   the resolved ``model`` section of the input
    @variables         {"min_nbor_dist": float}, when known
    training
      backend          name of the backend that wrote ``state``
      step             completed training steps
      input            the normalized, resolved input (out.json)
      data             {"train": ..., "valid": ...}: batch-order state of
                       :meth:`dpmodel.data.DataSystems.state` (RNG, cursors, permutations)
      @variables       {"state": the backend's flat state dict}

Files are ``<save_ckpt>-<step>.dp``, written atomically; ``<save_ckpt>.dp`` links to the
newest and the text file ``checkpoint`` (beside them) names it. Only the newest
``max_ckpt_keep`` numbered files are kept.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dpmodel import io
from dpmodel.errors import ModelFileError

__all__ = ["Checkpoint", "CheckpointKeeper", "latest_checkpoint", "read_checkpoint", "write_checkpoint"]

POINTER = "checkpoint"
SUFFIX = ".dp"


@dataclass
class Checkpoint:
    """The content of a checkpoint file (module docstring)."""

    model: dict
    config: dict
    backend: str
    step: int
    state: dict[str, np.ndarray]
    data: dict[str, Any]
    min_nbor_dist: float | None = None


def _data_tree(data: dict[str, Any]) -> dict[str, Any]:
    """Batch-order states with their arrays moved under ``@variables``."""
    return {name: {"rng": s["rng"], "cursor": s["cursor"], "@variables": {"order": s["order"]}}
            for name, s in data.items()}


def _data_state(tree: dict[str, Any]) -> dict[str, Any]:
    return {name: {"rng": s["rng"], "cursor": s["cursor"], "order": s["@variables"]["order"]}
            for name, s in tree.items()}


def write_checkpoint(path: str | Path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` (``.dp``) atomically."""
    data: dict[str, Any] = {"model": ckpt.model, "model_def_script": ckpt.config["model"]}
    if ckpt.min_nbor_dist is not None:
        data["@variables"] = {"min_nbor_dist": np.float64(ckpt.min_nbor_dist)}
    data["training"] = {"backend": ckpt.backend, "step": int(ckpt.step), "input": ckpt.config,
                        "data": _data_tree(ckpt.data), "@variables": {"state": dict(ckpt.state)}}
    io.save(path, data)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a file written by :func:`write_checkpoint`.

    Raises
    ------
    ModelFileError
        If ``path`` is missing or is a model file without training state.
    """
    path = Path(path)
    if path.is_dir():
        path = latest_checkpoint(path)
    if path.suffix.lower() != SUFFIX:
        raise ModelFileError(f"{str(path)!r} is not a training checkpoint (those are {SUFFIX} files written by "
                             "dp train); to start from a frozen model use --init-frz-model")
    data = io.load(path)
    training = data.get("training")
    if not isinstance(training, dict) or "step" not in training:
        raise ModelFileError(f"{str(path)!r} holds no training state; it is a model file, not a checkpoint "
                             "(use --init-frz-model to start from its weights)")
    variables = data.get("@variables") or {}
    dist = variables.get("min_nbor_dist")
    return Checkpoint(model=data["model"], config=training["input"], backend=training["backend"],
                      step=int(training["step"]), state=dict(training["@variables"]["state"]),
                      data=_data_state(training["data"]), min_nbor_dist=None if dist is None else float(dist))


def latest_checkpoint(folder: str | Path) -> Path:
    """The checkpoint named by ``folder/checkpoint``.

    Raises
    ------
    ModelFileError
        If the pointer file or the checkpoint it names is missing.
    """
    folder = Path(folder)
    pointer = folder / POINTER
    if not pointer.is_file():
        raise ModelFileError(f"no checkpoint in {str(folder)!r}: the file {str(pointer)!r} written by dp train "
                             "is missing")
    path = folder / pointer.read_text().strip()
    if not path.is_file():
        raise ModelFileError(f"{str(pointer)!r} names {path.name!r}, which does not exist")
    return path


def _replace_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically (a copy where symlinks are unavailable)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
    except OSError:
        import shutil

        shutil.copyfile(link.parent / target, tmp)
    os.replace(tmp, link)


class CheckpointKeeper:
    """Writes numbered checkpoints and keeps the newest ``max_keep``.

    Parameters
    ----------
    folder : Path
        Where checkpoints go (the working directory).
    prefix : str
        ``training/save_ckpt`` (``model.ckpt``).
    max_keep : int
        ``training/max_ckpt_keep``.
    """

    def __init__(self, folder: str | Path, prefix: str, max_keep: int) -> None:
        self.folder, self.prefix, self.max_keep = Path(folder), prefix, int(max_keep)
        self._pattern = re.compile(re.escape(Path(prefix).name) + r"-(\d+)" + re.escape(SUFFIX) + "$")

    def path(self, step: int) -> Path:
        return self.folder / f"{self.prefix}-{step}{SUFFIX}"

    def save(self, ckpt: Checkpoint) -> Path:
        """Write ``ckpt``, repoint ``<prefix>.dp`` and ``checkpoint``, drop the oldest files."""
        path = self.path(ckpt.step)
        write_checkpoint(path, ckpt)
        _replace_symlink(self.folder / f"{self.prefix}{SUFFIX}", path.name)
        io.atomic_write(path.parent / POINTER, lambda tmp: Path(tmp).write_text(path.name + "\n"))
        self._prune(path.parent)
        return path

    def _prune(self, folder: Path) -> None:
        found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := self._pattern.match(p.name)))
        for _, old in found[: max(0, len(found) - self.max_keep)]:
            old.unlink()
