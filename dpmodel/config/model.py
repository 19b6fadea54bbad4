"""Schema of the ``model`` section: type map, ``se_e2_r`` descriptor, ``ener`` fitting.

Keys and defaults are DeePMD-kit v3's (``deepmd/utils/argcheck.py``, SPEC 2.7, 7.1,
8.1).  ``se_r`` is declared here, once, as the alias of ``se_e2_r``; ``n_neuron``
as the alias of ``fitting_net/neuron``.
"""

from __future__ import annotations

import re
from typing import Any

from dargs import Argument, Variant

from dpmodel.config.common import activation, opt, precision, seed
from dpmodel.errors import ConfigError

__all__ = ["check_model", "model_args"]

_SEL_AUTO = re.compile(r"^auto(:\d+(\.\d*)?)?$")


def _is_sel(value: Any) -> bool:
    """True for a list of non-negative ints, ``"auto"`` or ``"auto:<factor>"``."""
    if isinstance(value, str):
        return bool(_SEL_AUTO.match(value))
    return all(isinstance(n, int) and n >= 0 for n in value)


def descriptor_se_e2_r() -> Argument:
    """The ``se_e2_r`` descriptor choice (alias ``se_r``), SPEC 2.7."""
    fields = [
        opt(
            "sel",
            [list[int], str],
            "auto",
            "Max neighbours of each type within rcut, or 'auto[:factor]' to count "
            "them from the data (factor 1.1 by default).",
            extra_check=_is_sel,
            extra_check_errmsg="expected one int per type, 'auto' or 'auto:<factor>'",
        ),
        opt("rcut", float, 6.0, "Cut-off radius, Å."),
        opt("rcut_smth", float, 0.5, "Start of the smooth switch, Å; < rcut."),
        opt("neuron", list[int], [10, 20, 40], "Widths of the embedding net."),
        activation(),
        opt("resnet_dt", bool, False, "Timestep in residual connections."),
        opt(
            "type_one_side",
            [bool, None],
            None,
            "One embedding net per neighbour type (true) or per (centre, neighbour) "
            "type pair (false). Left out: false on tf (DeePMD-kit's TensorFlow "
            "default), true on pt and jax (what DeePMD-kit's PyTorch runs); false is "
            "refused by pt and jax.",
        ),
        precision(),
        opt("trainable", bool, True, "Whether the descriptor is trained."),
        seed(),
        opt("exclude_types", list[list[int]], [], "Excluded type pairs [i, j]."),
        opt("env_protection", float, 0.0, "Protection in the environment matrix."),
        opt("set_davg_zero", bool, False, "Keep the environment-matrix mean 0."),
    ]
    doc = "Smooth edition descriptor using radial information only."
    return Argument("se_e2_r", dict, fields, alias=["se_r"], doc=doc)


def fitting_ener() -> Argument:
    """The ``ener`` fitting-net choice, SPEC 8.1."""
    fields = [
        opt("numb_fparam", int, 0, "Number of frame parameters."),
        opt("numb_aparam", int, 0, "Number of atomic parameters."),
        opt("dim_case_embd", int, 0, "Dimension of the case embedding."),
        opt("default_fparam", [list[float], None], None, "Default frame parameters."),
        opt(
            "neuron",
            list[int],
            [120, 120, 120],
            "Widths of the fitting-net hidden layers.",
            alias=["n_neuron"],
        ),
        activation(),
        precision(),
        opt("resnet_dt", bool, True, "Timestep in residual connections."),
        opt("trainable", [list[bool], bool], True, "Train all layers or each."),
        opt("rcond", [float, None], None, "Cut-off of singular values (bias fit)."),
        seed(),
        opt("atom_ener", list[float | None], [], "Fixed energy per type (eV)."),
        Argument("layer_name", list[str], optional=True, doc="Shared-layer names."),
        opt("use_aparam_as_mask", bool, False, "Use aparam as a mask."),
    ]
    return Argument("ener", dict, fields, doc="Energy fitting network.")


def type_embedding_args() -> Argument:
    """The TF-only model-level ``type_embedding`` section, SPEC 7.1."""
    fields = [
        opt("neuron", list[int], [8], "Widths of the type-embedding net."),
        activation(),
        opt("resnet_dt", bool, False, "Timestep in residual connections."),
        precision(),
        opt("trainable", bool, True, "Whether the type embedding is trained."),
        seed(),
        opt("padding", bool, False, "Append a zero row to the embedding."),
        opt("use_econf_tebd", bool, False, "Electronic-configuration input."),
        opt("use_tebd_bias", bool, False, "Bias terms in the embedding net."),
    ]
    doc = "TensorFlow only: type embedding appended to the fitting input."
    return Argument("type_embedding", dict, fields, optional=True, doc=doc)


def model_args() -> Argument:
    """Return the ``model`` section schema."""
    descriptor = Argument(
        "descriptor",
        dict,
        sub_variants=[Variant("type", [descriptor_se_e2_r()], doc="Descriptor.")],
        doc="The descriptor.",
    )
    fitting = Argument(
        "fitting_net",
        dict,
        sub_variants=[Variant("type", [fitting_ener()], True, "ener", "Fitting.")],
        optional=True,
        default={},
        doc="The fitting network (default: 'ener' with default keys).",
    )
    bias_type = [dict[str, list[float | list[float] | None]], None]
    fields = [
        opt(
            "type",
            str,
            "standard",
            "Model type.",
            extra_check=lambda value: value == "standard",
            extra_check_errmsg="only 'standard' is supported",
        ),
        Argument("type_map", list[str], optional=True, doc="Element of each type."),
        opt("data_stat_nbatch", int, 10, "Batches per system for statistics."),
        opt("data_stat_protect", float, 1e-2, "Floor of standard deviations."),
        opt("data_bias_nsample", int, 10, "Batches sampled to change the bias."),
        opt("pair_exclude_types", list[list[int]], [], "Excluded type pairs."),
        opt("atom_exclude_types", list[int], [], "Types excluded from the energy."),
        opt("preset_out_bias", bias_type, None, "Preset energy bias per type."),
        descriptor,
        fitting,
        type_embedding_args(),
    ]
    return Argument("model", dict, fields, doc="The model.")


def check_model(model: dict[str, Any]) -> None:
    """Cross-key checks of a normalized ``model`` section.

    Parameters
    ----------
    model : dict
        The normalized ``model`` section.

    Raises
    ------
    ConfigError
        If ``rcut_smth >= rcut`` or ``sel`` and ``type_map`` differ in length.
    """
    descriptor = model["descriptor"]
    rcut, rcut_smth = descriptor["rcut"], descriptor["rcut_smth"]
    if not 0 <= rcut_smth < rcut:
        raise ConfigError(
            f"model/descriptor/rcut_smth = {rcut_smth} must satisfy "
            f"0 <= rcut_smth < rcut = {rcut}"
        )
    sel, type_map = descriptor["sel"], model.get("type_map")
    if isinstance(sel, list) and type_map is not None and len(sel) != len(type_map):
        raise ConfigError(
            f"model/descriptor/sel has {len(sel)} entries but model/type_map has "
            f"{len(type_map)} types; give one sel per type"
        )
