"""Backend-neutral model files: ``.dp`` (HDF5) and ``.yaml``/``.yml``, DeePMD-kit v3 layout.

A file holds an envelope dict: ``software``, ``version``, ``time``, then the caller's
keys (``model``, ``model_def_script``, ``backend``, ``@variables``...). Arrays live under
``@variables`` subtrees. In ``.dp`` each array is a root dataset ``variable_NNNN`` and
the tree, with dataset paths in place of arrays, is the JSON root attribute ``json``.
In YAML each array is a tagged mapping (``@class: np.ndarray``). Writes go to a
temporary file renamed into place; loading never executes code from the file.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

import dpmodel
from dpmodel.errors import ModelFileError

SOFTWARE = "dpmodel-se-r"


def envelope(data: dict) -> dict:
    """``data`` with the software, version and UTC time keys in front (``data`` wins on collisions)."""
    head = {"software": SOFTWARE, "version": dpmodel.__version__,
            "time": str(datetime.datetime.now(datetime.timezone.utc))}
    return {**head, **data}


def map_variables(tree: Any, fn: Callable[[Any], Any], inside: bool = False) -> Any:
    """Copy of ``tree`` with ``fn`` applied to every non-None leaf under an ``@variables`` key."""
    if isinstance(tree, dict):
        if inside and tree.get("@is_variable"):
            return fn(tree)
        return {k: map_variables(v, fn, inside or k == "@variables") for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [map_variables(v, fn, inside) for v in tree]
    return fn(tree) if inside and tree is not None else tree


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    A failed write leaves any existing ``path`` untouched and no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(path: str | Path, data: dict) -> None:
    """Write ``data`` (plus the envelope) as ``.dp`` or ``.yaml``/``.yml``, chosen by suffix."""
    suffix = Path(path).suffix.lower()
    writers = {".dp": _write_hdf5, ".hlo": _write_hdf5, ".yaml": _write_yaml, ".yml": _write_yaml}
    if suffix not in writers:
        raise ModelFileError(f"cannot write {str(path)!r}: dpmodel files end in .dp, .yaml or .yml")
    full = envelope(data)
    atomic_write(path, lambda tmp: writers[suffix](tmp, full))


def load(path: str | Path) -> dict:
    """Read a ``.dp`` or ``.yaml``/``.yml`` file into its envelope dict (arrays as NumPy)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".dp", ".hlo"):
            return _read_hdf5(path)
        if suffix in (".yaml", ".yml"):
            return _read_yaml(path)
    except (OSError, ValueError, KeyError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"cannot read model file {str(path)!r}: {err}") from err
    raise ModelFileError(f"cannot read {str(path)!r}: dpmodel files end in .dp, .yaml or .yml")


def write_tree(f: Any, data: dict) -> None:
    """Store ``data`` in an open ``h5py.File`` in the ``.dp`` layout (datasets + ``json`` attribute)."""
    counter = iter(range(10**9))

    def store(value: Any) -> str:
        name = f"variable_{next(counter):04d}"
        f.create_dataset(name, data=np.asarray(value))
        return f"/{name}"

    f.attrs["json"] = json.dumps(map_variables(data, store), separators=(",", ":"))


def read_tree(f: Any, path: str | Path) -> dict:
    """The dict stored by :func:`write_tree` in the open ``h5py.File`` ``f`` (read from ``path``)."""
    if "json" not in f.attrs:
        raise ModelFileError(f"{str(path)!r} is an HDF5 file without the 'json' attribute of a .dp model")
    tree = json.loads(f.attrs["json"])

    def fetch(ref: Any) -> Any:
        if not isinstance(ref, str) or ref.lstrip("/") not in f:
            raise ModelFileError(f"{str(path)!r}: variable reference {ref!r} has no dataset")
        value = f[ref][()]
        return value.decode() if isinstance(value, bytes) else value

    return map_variables(tree, fetch)


def _write_hdf5(filename: str, data: dict) -> None:
    import h5py

    with h5py.File(filename, "w") as f:
        write_tree(f, data)


def _read_hdf5(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        return read_tree(f, path)


def _write_yaml(filename: str, data: dict) -> None:
    import yaml

    def tag(value: Any) -> Any:
        array = np.asarray(value)
        if array.dtype.kind in "fiub":
            return {"@class": "np.ndarray", "@is_variable": True, "@version": 1,
                    "dtype": array.dtype.name, "value": array.tolist()}
        return value

    with open(filename, "w") as f:
        yaml.safe_dump(map_variables(data, tag), f)


def _read_yaml(path: Path) -> dict:
    import yaml

    with open(path) as f:
        try:
            tree = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ModelFileError(f"{str(path)!r} is not a valid model YAML file: {err}") from err
    if not isinstance(tree, dict):
        raise ModelFileError(f"{str(path)!r} does not hold a YAML mapping")

    def untag(value: Any) -> Any:
        if isinstance(value, dict) and value.get("@is_variable"):
            return np.asarray(value["value"], dtype=np.dtype(value["dtype"]))
        return value

    return map_variables(tree, untag)
