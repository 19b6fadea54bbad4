"""The initial model, built once in dpmodel so that every backend starts from the same dict.

From a normalized, backend-resolved input (SPEC 5, 8.7):

1. ``sel: "auto[:ratio]"`` becomes :func:`dpmodel.training.neighbor_stat.auto_sel` of
   the training data's neighbour counts;
2. network seeds left ``null`` derive from ``training/seed`` (itself drawn and recorded
   when ``null``), so the weights are a function of the input file;
3. the descriptor's ``davg``/``dstd`` come from ``data_stat_nbatch`` batches of every
   training system (:func:`dpmodel.stat.compute_descriptor_stat`);
4. the energy bias of each type is the least-squares fit of the sampled energies to
   the atom counts (:func:`dpmodel.stat.energy_bias`), stored in ``out_bias``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np

from dpmodel.activation import canonical_activation
from dpmodel.capabilities import check_supported
from dpmodel.data import DataSystems
from dpmodel.descriptor import DescrptSeR
from dpmodel.errors import ConfigError
from dpmodel.fitting import EnergyFitting
from dpmodel.model import EnergyModel
from dpmodel.network import EmbeddingNet
from dpmodel.precision import canonical_precision
from dpmodel.stat import compute_descriptor_stat, energy_bias
from dpmodel.training.neighbor_stat import auto_sel

__all__ = ["build_model", "initial_model", "resolve_seeds", "resolve_sel", "stat_batches", "type_embedding_dict"]

log = logging.getLogger(__name__)


def resolve_sel(config: dict[str, Any], max_count: np.ndarray | None) -> dict[str, Any]:
    """A copy of ``config`` whose ``sel: "auto[:ratio]"`` is replaced by a list."""
    config = copy.deepcopy(config)
    descriptor = config["model"]["descriptor"]
    sel = descriptor["sel"]
    if isinstance(sel, str):
        if max_count is None:
            raise ConfigError("model/descriptor/sel = 'auto' needs the neighbour statistics of the data; "
                              "do not combine it with --skip-neighbor-stat, or give sel as a list")
        ratio = float(sel.split(":")[1]) if ":" in sel else 1.1
        descriptor["sel"] = auto_sel(max_count, ratio)
        log.info("sel %r resolved to %s from the training data", sel, descriptor["sel"])
    return config


def resolve_seeds(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with ``training/seed`` and the network seeds all set.

    A ``null`` ``training/seed`` is drawn at random (and then recorded in out.json);
    ``null`` descriptor / fitting seeds become ``seed`` / ``seed + 1`` (plain integers,
    so out.json stays a valid input).
    """
    config = copy.deepcopy(config)
    training = config["training"]
    if training.get("seed") is None:
        training["seed"] = int(np.random.SeedSequence().entropy % 2**31)
        log.info("training/seed not set; drew %d", training["seed"])
    sections = [config["model"]["descriptor"], config["model"]["fitting_net"]]
    if config["model"].get("type_embedding") is not None:
        sections.append(config["model"]["type_embedding"])
    for offset, section in enumerate(sections):
        if section.get("seed") is None:
            section["seed"] = int(training["seed"]) + offset
    return config


def _descriptor_class(backend: str) -> type:
    """dpmodel's descriptor refusing exactly what ``backend`` refuses (its ``backend`` attribute)."""
    return type(f"DescrptSeR_{backend}", (DescrptSeR,), {"backend": backend})


def build_model(model: dict[str, Any], backend: str = "dpmodel") -> EnergyModel:
    """An :class:`EnergyModel` with freshly initialised weights from a resolved ``model`` section."""
    type_map = model.get("type_map")
    if not type_map:
        raise ConfigError("model/type_map is required for training: list the element of each type")
    if len(model["descriptor"]["sel"]) != len(type_map):
        raise ConfigError(f"model/descriptor/sel has {len(model['descriptor']['sel'])} entries but "
                          f"model/type_map has {len(type_map)} types")
    options = {k: v for k, v in model["descriptor"].items() if k != "type"}
    descriptor = _descriptor_class(backend)(**options, type_map=list(type_map))
    fitting_options = {k: v for k, v in model["fitting_net"].items() if k != "type"}
    for key in ("numb_fparam", "numb_aparam"):
        if fitting_options.get(key):
            raise ConfigError(f"model/fitting_net/{key} = {fitting_options[key]} is not supported by training "
                              "here (the data loader reads no fparam/aparam); set it to 0")
    dim_descrpt = descriptor.dim_out
    tebd = model.get("type_embedding")
    if tebd is not None:  # TensorFlow only (SPEC 7): fitting input [D, T(t)], one shared net
        check_supported("model/type_embedding", tebd, backend)
        dim_descrpt += int(tebd.get("neuron", [8])[-1])
        fitting_options["mixed_types"] = True
    fitting = EnergyFitting(len(type_map), dim_descrpt, type_map=list(type_map), **fitting_options)
    return EnergyModel(descriptor, fitting, type_map, atom_exclude_types=model["atom_exclude_types"],
                       pair_exclude_types=model["pair_exclude_types"], rcond=model["fitting_net"].get("rcond"),
                       preset_out_bias=model.get("preset_out_bias"))


def stat_batches(data: DataSystems, nbatch: int, seed: int) -> list[dict[str, Any]]:
    """``nbatch`` batches of every system for statistics, drawn with their own seeded generator.

    System ``i`` walks through permutations of its frames drawn from
    ``numpy.random.default_rng([seed, i])``; the training batch order is not touched.
    """
    batches = []
    for isys, (system, size) in enumerate(zip(data.systems, data.batch_sizes)):
        rng = np.random.default_rng([seed, isys])
        need = nbatch * size
        order = np.concatenate([rng.permutation(system.nframes) for _ in range(-(-need // system.nframes))])
        batches += [system.frames(order[k * size:(k + 1) * size]) for k in range(nbatch)]
    return batches


def _preset_bias(model: dict[str, Any], ntypes: int) -> list | None:
    """Per-type fixed energies from ``preset_out_bias.energy`` or ``fitting_net/atom_ener``."""
    preset = (model.get("preset_out_bias") or {}).get("energy")
    if preset is None and model["fitting_net"].get("atom_ener"):
        preset = model["fitting_net"]["atom_ener"]
    if preset is None:
        return None
    return [None if v is None else float(np.ravel(v)[0]) for v in list(preset)[:ntypes]]


def initial_model(config: dict[str, Any], data: DataSystems, backend: str = "dpmodel") -> dict:
    """The serialized initial model of a resolved input (module docstring).

    Parameters
    ----------
    config : dict
        Normalized input with ``sel`` and seeds resolved.
    data : DataSystems
        The training systems (their batch sizes are used for sampling).
    backend : str
        Backend whose refusals apply while building.

    Returns
    -------
    dict
        The model dict (:meth:`EnergyModel.serialize`).
    """
    model_cfg = config["model"]
    model = build_model(model_cfg, backend)
    batches = stat_batches(data, model_cfg["data_stat_nbatch"], config["training"]["seed"])
    frames = ((b["coord"], b["atype"], b["box"]) for b in batches)
    compute_descriptor_stat(model.descriptor, frames, protection=model_cfg["data_stat_protect"])
    labelled = [b for b in batches if b["find_energy"]]
    ntypes = len(model.type_map)
    if labelled:
        energy = np.concatenate([b["energy"] for b in labelled])
        counts = np.concatenate([b["natoms_per_type"] for b in labelled]).astype(np.float64)
        counts[:, model.atom_exclude_types] = 0.0
        bias = energy_bias(energy, counts, model_cfg["fitting_net"].get("rcond"), _preset_bias(model_cfg, ntypes))
        model.out_bias = bias.reshape(1, ntypes, 1)
        log.info("energy bias per type (eV): %s", dict(zip(model.type_map, np.round(bias, 6).tolist())))
    data = model.serialize()
    if model_cfg.get("type_embedding") is not None:
        data["type_embedding"] = type_embedding_dict(model_cfg["type_embedding"], list(model.type_map))
    return data


def type_embedding_dict(config: dict[str, Any], type_map: list[str]) -> dict:
    """A freshly initialised model-level type embedding (SPEC 7.2 ``TypeEmbedNet`` dict, TensorFlow only)."""
    if config.get("use_econf_tebd"):
        raise ConfigError("model/type_embedding/use_econf_tebd = true is not supported; set it to false")
    precision = canonical_precision(config.get("precision", "default"), "model/type_embedding/precision")
    activation = canonical_activation(config.get("activation_function", "tanh"), "model/type_embedding/activation_function")
    neuron, bias = [int(n) for n in config.get("neuron", [8])], bool(config.get("use_tebd_bias", False))
    trainable, resnet_dt = bool(config.get("trainable", True)), bool(config.get("resnet_dt", False))
    net = EmbeddingNet(len(type_map), neuron, activation, resnet_dt, precision, config.get("seed"), bias=bias,
                       trainable=trainable)
    return {"@class": "TypeEmbedNet", "@version": 2, "ntypes": len(type_map), "neuron": neuron, "resnet_dt": resnet_dt,
            "precision": precision, "activation_function": activation, "trainable": trainable,
            "padding": bool(config.get("padding", False)), "use_econf_tebd": False, "use_tebd_bias": bias,
            "type_map": type_map, "embedding": net.serialize()}
