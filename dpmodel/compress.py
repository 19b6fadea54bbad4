"""``dp compress`` on serialized models: tabulate the embedding nets of any model file.

Compression works on the serialized dict, so one implementation serves every
backend's file format: :func:`compress_model_dict` adds DeePMD-kit HEAD's ``compress``
entry (descriptor ``@version`` 3) built by :mod:`dpmodel.tabulate`, and
:func:`compress_file` reads and writes through :mod:`dpmodel.registry`. The input range
needs the smallest neighbour distance of the training data: the file envelope's
``@variables.min_nbor_dist`` when present, else computed from the training systems of
a training script (``-t input.json``) by :mod:`dpmodel.training.neighbor_stat`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dpmodel.capabilities import check_supported
from dpmodel.errors import ConfigError, ModelFileError
from dpmodel.network import NetworkCollection
from dpmodel.precision import numpy_dtype
from dpmodel.tabulate import serialize_tables, tabulate_embeddings

LOG = logging.getLogger("dpmodel.compress")


def compress_model_dict(model_dict: dict, min_nbor_dist: float, step: float = 0.01, extrapolate: float = 5,
                        frequency: int = -1, backend: str | None = None) -> dict:
    """A copy of a serialized energy model whose descriptor carries tables.

    Parameters
    ----------
    model_dict : DeePMD-kit v3 model dict (``@class: Model``), e.g. ``envelope["model"]``
    min_nbor_dist : smallest neighbour distance in the training data; Å
    step : stride of the fine table (``-s``); the coarse table uses ``10 * step``
    extrapolate : the coarse table ends at ``extrapolate`` times the fine upper bound (``-e``)
    frequency : overflow check period in evaluations (``-f``); -1 is off
    backend : the backend that will hold the result (refusals are checked for it), or None

    Raises
    ------
    UnsupportedOptionError
        For a model-level type embedding, or ``type_one_side = false`` in a backend
        other than TensorFlow.
    """
    if not isinstance(model_dict, dict) or model_dict.get("@class") != "Model":
        raise ModelFileError("dp compress expects a serialized model (@class 'Model')")
    if model_dict.get("type_embedding") is not None:
        check_supported("dp compress: model/type_embedding", True, backend or "dpmodel")
    desc = model_dict.get("descriptor", {})
    if desc.get("type") not in ("se_r", "se_e2_r"):
        raise ModelFileError(f"dp compress supports the se_e2_r descriptor; found {desc.get('type')!r}")
    one_side = bool(desc.get("type_one_side", True))
    if backend is not None:
        check_supported("model/descriptor/type_one_side", one_side, backend)
    ntypes, nnei = len(desc["sel"]), int(sum(desc["sel"]))
    dtype = numpy_dtype(desc.get("precision", "float64"))
    variables = desc["@variables"]
    davg = np.asarray(variables["davg"], dtype=np.float64).reshape(ntypes, nnei, 1)
    dstd = np.asarray(variables["dstd"], dtype=np.float64).reshape(ntypes, nnei, 1)
    tables = tabulate_embeddings(
        NetworkCollection.deserialize(desc["embeddings"]), davg, dstd, float(desc["rcut_smth"]),
        float(desc["rcut"]), list(desc["sel"]), one_side, float(min_nbor_dist),
        step, extrapolate, frequency, dtype)
    out = dict(model_dict)
    out["descriptor"] = {**desc, "@version": 3, "compress": serialize_tables(tables, dtype)}
    return out


def compress_file(input: str | Path, output: str | Path, step: float = 0.01, extrapolate: float = 5,
                  frequency: int = -1, training_script: str | Path | None = None) -> dict:
    """``dp compress -i INPUT -o OUTPUT``: any model file to a compressed one of any format.

    The output keeps ``model`` (compressed), ``model_def_script`` and records
    ``@variables.min_nbor_dist``. Returns the data written.
    """
    from dpmodel.registry import for_suffix, load_model_file, save_model_file

    backend = for_suffix(output).name
    backend = None if backend == "dpmodel" else backend  # .dp/.yaml hold any valid model (TF-only ones too)
    data = load_model_file(input)
    stored = (data.get("@variables") or {}).get("min_nbor_dist")
    if stored is not None:
        distance = float(np.asarray(stored))
    elif training_script is not None:
        distance = min_nbor_dist_from_script(training_script, data["model"])
    else:
        raise ConfigError(f"{str(input)!r} does not record min_nbor_dist; pass the training script with "
                          "-t input.json so it can be computed from the training data")
    LOG.info("compressing with min_nbor_dist = %.6g Å, step %g, extrapolate %g, check frequency %d",
             distance, step, extrapolate, frequency)
    out = {"model": compress_model_dict(data["model"], distance, step, extrapolate, frequency, backend)}
    if data.get("model_def_script") is not None:
        out["model_def_script"] = data["model_def_script"]
    out["@variables"] = {"min_nbor_dist": np.float64(distance)}
    save_model_file(output, out)
    return out


def min_nbor_dist_from_script(script: str | Path, model_dict: dict) -> float:
    """Smallest neighbour distance (Å) in the training systems of a training script (``-t``)."""
    from dpmodel.config import load_input
    from dpmodel.data import DeepmdSystem, expand_systems
    from dpmodel.training.neighbor_stat import neighbor_stat

    script = Path(script)
    config = load_input(script)
    spec = config["training"]["training_data"]["systems"]
    type_map = list(model_dict.get("type_map") or config["model"]["type_map"])
    rcut = float(model_dict["descriptor"]["rcut"])
    systems = [DeepmdSystem(path, type_map) for path in expand_systems(spec, root=script.parent)]
    distance = neighbor_stat(systems, rcut, len(type_map)).min_dist
    if not np.isfinite(distance):
        raise ConfigError(f"no two atoms of the training data of {str(script)!r} are within rcut = {rcut} Å; "
                          "cannot choose the compression range")
    return float(distance)
