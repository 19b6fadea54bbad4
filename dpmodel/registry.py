"""Backend discovery: entry points name each backend's :class:`BackendInfo`.

A backend is one line in the ``dpmodel.backends`` entry-point group of
``pyproject.toml`` pointing at a :class:`BackendInfo`. Nothing is imported until a
command needs it; ``dpmodel`` itself serves ``.dp`` and ``.yaml``/``.yml``.

A backend's ``io`` module provides::

    load(path) -> dict              # file envelope: {"model": ..., "model_def_script": ..., ...}
    save(path, data: dict) -> None  # writes atomically
    Evaluator(path)                 # .data (envelope) and
                                    # .evaluate(coord, box, atype, fparam, aparam, atomic) -> dict
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from dpmodel.errors import ModelFileError

GROUP = "dpmodel.backends"


@dataclass(frozen=True)
class BackendInfo:
    """What a backend declares about itself.

    Attributes
    ----------
    name : short name, also the pip extra that installs it (``pt``)
    aliases : other accepted names (``pytorch``)
    suffixes : model file suffixes it reads and writes, first is the default
    requires : importable modules it needs (checked with ``find_spec``)
    io, train : dotted module paths of its file and training modules
    """

    name: str
    aliases: tuple[str, ...]
    suffixes: tuple[str, ...]
    requires: tuple[str, ...]
    io: str
    train: str | None = None
    title: str = ""
    extras: dict = field(default_factory=dict)

    def available(self) -> bool:
        """Whether every required module is installed."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def module(self, kind: str = "io") -> ModuleType:
        """Import the backend's ``io`` or ``train`` module, with a clear error if it cannot."""
        if not self.available():
            missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
            raise ModelFileError(
                f"backend {self.name!r} needs {', '.join(missing)}, which is not installed; "
                f"install it with: pip install '.[{self.name}]'"
            )
        path = getattr(self, kind)
        if path is None:
            raise ModelFileError(f"backend {self.name!r} provides no {kind} module")
        return importlib.import_module(path)


DPMODEL = BackendInfo(
    name="dpmodel", aliases=("dp", "numpy", "np"), suffixes=(".dp", ".yaml", ".yml"), requires=(),
    io="dpmodel.evaluator", train=None, title="dpmodel (NumPy)",
)


@lru_cache(maxsize=1)
def backends() -> dict[str, BackendInfo]:
    """Every known backend by name: dpmodel plus the entry points of :data:`GROUP`."""
    found = {DPMODEL.name: DPMODEL}
    for entry in entry_points(group=GROUP):
        info = entry.load()
        found[info.name] = info
    return found


def by_name(name: str) -> BackendInfo:
    """Backend by name or alias (``pt``, ``pytorch``, ``tf``, ...)."""
    key = name.lower()
    for info in backends().values():
        if key == info.name or key in info.aliases:
            return info
    known = ", ".join(sorted(backends()))
    raise ValueError(f"unknown backend {name!r}; known backends: {known}")


def for_suffix(path: str | Path) -> BackendInfo:
    """The backend that owns the suffix of ``path``."""
    name = str(path).lower().rstrip("/")
    owners = [info for info in backends().values() if any(name.endswith(s) for s in info.suffixes)]
    if len(owners) == 1:
        return owners[0]
    if not owners:
        known = ", ".join(f"{s} ({i.name})" for i in backends().values() for s in i.suffixes)
        raise ModelFileError(f"no backend reads model files like {str(path)!r}; known suffixes: {known}")
    raise ModelFileError(f"suffix of {str(path)!r} is claimed by several backends: {[o.name for o in owners]}")


def load_model_file(path: str | Path) -> dict:
    """The envelope dict of any model file, through the backend that owns its suffix."""
    return for_suffix(path).module("io").load(path)


def save_model_file(path: str | Path, data: dict) -> None:
    """Write an envelope dict to any model format, chosen by suffix."""
    for_suffix(path).module("io").save(path, data)
