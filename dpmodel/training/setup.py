"""Everything before the first step of ``dp train``, in an order that writes nothing until all checks pass.

1. read and normalize the input (unknown or misplaced keys name their path);
2. resolve backend-dependent defaults and refusals (:mod:`dpmodel.config.backend`);
3. check that the backend can train here (without importing its framework);
4. read the starting checkpoint or model file, if any (``--restart``, ``--init-model``,
   ``--init-frz-model``);
5. load the training and validation systems (paths relative to the input file);
6. pre-flight checks and neighbour statistics (:mod:`dpmodel.training.preflight`);
7. import the backend's ``BackendTrainer``; the starting model (step 4, or fresh
   weights and statistics from :mod:`dpmodel.training.init`) and the trainer over it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpmodel.config import load_input
from dpmodel.config.backend import resolve_for_backend
from dpmodel.data import DataSystems
from dpmodel.errors import ConfigError
from dpmodel.registry import BackendInfo, by_name, load_model_file
from dpmodel.training.checkpoint import Checkpoint, read_checkpoint
from dpmodel.training.init import initial_model, resolve_seeds, resolve_sel
from dpmodel.training.loss import check_loss
from dpmodel.training.preflight import preflight
from dpmodel.training.protocol import check_trainable, trainer_class

__all__ = ["Prepared", "TrainOptions", "prepare"]

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """Command-line options of ``dp train`` (all optional)."""

    restart: Path | None = None
    init_model: Path | None = None
    init_frz_model: Path | None = None
    skip_neighbor_stat: bool = False
    output: Path = Path("out.json")
    workdir: Path = Path(".")
    progress: bool | None = None


@dataclass
class Prepared:
    """A training run ready to start."""

    config: dict
    backend: BackendInfo
    trainer: Any
    train: DataSystems
    valid: DataSystems | None
    start_step: int = 0
    min_nbor_dist: float | None = None
    restarted: bool = False
    extra: dict = field(default_factory=dict)


def _data(config: dict, key: str, root: Path, seed: Any) -> DataSystems | None:
    section = config["training"].get(key)
    if section is None:
        return None
    return DataSystems(section["systems"], config["model"]["type_map"], section["batch_size"], seed=seed,
                       sys_probs=section.get("sys_probs"), auto_prob=section.get("auto_prob", "prob_sys_size"),
                       root=root)


def _starting_model(options: TrainOptions, config: dict) -> tuple[dict | None, Checkpoint | None, float | None]:
    """``(model dict, checkpoint, min_nbor_dist)`` from --restart/--init-model/--init-frz-model, or Nones."""
    chosen = [o for o in ("restart", "init_model", "init_frz_model") if getattr(options, o) is not None]
    if len(chosen) > 1:
        raise ConfigError(f"--{chosen[0].replace('_', '-')} and --{chosen[1].replace('_', '-')} exclude each other")
    if options.restart is not None:
        ckpt = read_checkpoint(options.restart)
        return ckpt.model, ckpt, ckpt.min_nbor_dist
    if options.init_model is not None:
        ckpt = read_checkpoint(options.init_model)
        return ckpt.model, None, ckpt.min_nbor_dist
    if options.init_frz_model is not None:
        data = load_model_file(options.init_frz_model)
        dist = (data.get("@variables") or {}).get("min_nbor_dist")
        return data["model"], None, None if dist is None else float(dist)
    return None, None, None


def _adopt_model(config: dict, model: dict, source: str) -> dict:
    """Check a starting model against the input and take its ``sel``/``rcut`` into the config."""
    if list(model["type_map"]) != list(config["model"]["type_map"]):
        raise ConfigError(f"{source} has type_map {model['type_map']} but model/type_map is "
                          f"{config['model']['type_map']}; they must be equal")
    descriptor = config["model"]["descriptor"]
    for key in ("rcut", "rcut_smth", "sel", "neuron", "type_one_side"):
        if key in model["descriptor"] and descriptor.get(key) not in (model["descriptor"][key], "auto", None):
            log.warning("model/descriptor/%s = %r differs from %r in %s; the model's value is used",
                        key, descriptor.get(key), model["descriptor"][key], source)
        descriptor[key] = model["descriptor"][key]
    return config


def prepare(input_path: str | Path, backend: str, options: TrainOptions) -> Prepared:
    """Run the steps of the module docstring; nothing is written to disk."""
    input_path = Path(input_path)
    config = load_input(input_path)
    check_loss(config["loss"])
    info = by_name(backend)
    config = resolve_for_backend(config, info.name)
    check_trainable(info)
    if not config["model"].get("type_map"):
        raise ConfigError("model/type_map is required for training: list the element of each type")
    model, ckpt, min_dist = _starting_model(options, config)
    if ckpt is not None:
        if ckpt.backend != info.name:
            raise ConfigError(f"{options.restart} was written by backend {ckpt.backend!r}; restart it with "
                              f"--{ckpt.backend}, or start from its weights with --init-model")
        config["training"]["seed"] = ckpt.config["training"]["seed"]
    if model is not None:
        config = _adopt_model(config, model, str(options.restart or options.init_model or options.init_frz_model))
    config = resolve_seeds(config)
    seed = config["training"]["seed"]
    root = input_path.resolve().parent
    train, valid = _data(config, "training_data", root, seed), _data(config, "validation_data", root, [seed, 1])
    descriptor = config["model"]["descriptor"]
    stat = None
    if options.skip_neighbor_stat:
        log.warning("--skip-neighbor-stat: overlapping atoms and sel overflow are not checked")
    else:
        stat = preflight(train, valid, descriptor["rcut"], descriptor["sel"], config["model"]["type_map"])
    config = resolve_sel(config, None if stat is None else stat.max_count)
    cls = trainer_class(info)  # the framework is imported only once input and data are known to be good
    if model is None:
        model = initial_model(config, train, info.name)
    if stat is not None:
        min_dist = stat.min_dist
    trainer = cls(model, config)
    if stat is not None and hasattr(trainer, "set_max_neighbors"):
        trainer.set_max_neighbors([int(c) for c in stat.max_count])
    prepared = Prepared(config, info, trainer, train, valid, min_nbor_dist=min_dist)
    if ckpt is not None:
        trainer.load_state(ckpt.state)
        train.load_state(ckpt.data["train"])
        if valid is not None and "valid" in ckpt.data:
            valid.load_state(ckpt.data["valid"])
        prepared.start_step, prepared.restarted = ckpt.step, True
    return prepared
