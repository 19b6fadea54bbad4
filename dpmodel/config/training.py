"""Schema of the ``training`` section: data, steps, output files (SPEC 8.1, 8.6).

Batch-size strings are validated by ``dpmodel.data.batch_size.parse_rule``, the
same function the data loader uses.
"""

from __future__ import annotations

from typing import Any

from dargs import Argument

from dpmodel.config.common import opt
from dpmodel.data.batch_size import parse_rule
from dpmodel.errors import ConfigError

__all__ = ["check_training", "training_args"]


def _is_batch_size(value: Any) -> bool:
    """True for a valid batch-size rule or a list of positive ints."""
    rules = value if isinstance(value, list) else [value]
    try:
        for rule in rules:
            parse_rule(rule)
    except ConfigError:
        return False
    return True


def data_args(name: str, doc: str, validation: bool = False) -> Argument:
    """``training_data`` or ``validation_data``."""
    fields = [
        Argument(
            "systems",
            [list[str], str],
            doc="System directories, or directories searched for them; relative "
            "to the directory of input.json.",
        ),
        opt(
            "batch_size",
            [list[int], int, str],
            "auto",
            "Frames per batch: int, list (one per system), 'auto', 'auto:N', "
            "'max:N' or 'filter:N' (N atoms).",
            extra_check=_is_batch_size,
            extra_check_errmsg="expected int, list of int, 'auto', 'auto:N', "
            "'max:N' or 'filter:N' ('mixed:N' is not supported by se_e2_r)",
        ),
        opt(
            "auto_prob",
            str,
            "prob_sys_size",
            "System probability: prob_uniform, prob_sys_size, "
            "prob_sys_size;i0:i1:w;...",
            alias=["auto_prob_style"],
        ),
        opt(
            "sys_probs",
            [list[float], None],
            None,
            "Explicit system weights.",
            alias=["sys_weights"],
        ),
        opt("rglob_patterns", [list[str], None], None, "Patterns to find systems."),
    ]
    if validation:
        fields.append(
            opt("numb_btch", int, 1, "Batches per validation.", alias=["numb_batch"])
        )
        return Argument(
            name, [dict, None], fields, optional=True, default=None, doc=doc
        )
    return Argument(name, dict, fields, doc=doc)


def training_args() -> Argument:
    """Return the ``training`` section schema."""
    fields = [
        data_args("training_data", "Training data."),
        data_args("validation_data", "Validation data.", validation=True),
        Argument(
            "numb_steps",
            int,
            alias=["stop_batch", "num_steps"],
            doc="Number of training steps.",
        ),
        opt("seed", [int, None], None, "Seed of the batch order."),
        opt("disp_file", str, "lcurve.out", "Learning-curve file."),
        opt("disp_freq", int, 1000, "Steps between learning-curve rows."),
        opt(
            "numb_test",
            [list[int], int, str],
            1,
            "Frames tested during training (DeePMD-kit TensorFlow; accepted, unused "
            "here: validation uses validation_data/numb_btch).",
        ),
        opt("save_freq", int, 1000, "Steps between checkpoints."),
        opt("save_ckpt", str, "model.ckpt", "Checkpoint file prefix."),
        opt("max_ckpt_keep", int, 5, "Newest checkpoints kept."),
        opt("disp_training", bool, True, "Print training progress."),
        opt("time_training", bool, True, "Print timing."),
        Argument("stat_file", str, optional=True, doc="Cache of data statistics."),
        Argument("gradient_max_norm", float, optional=True, doc="Gradient clip."),
        opt("tensorboard", bool, False, "Write TensorBoard logs."),
        opt("tensorboard_log_dir", str, "log", "TensorBoard directory."),
        opt("tensorboard_freq", int, 1, "Steps between TensorBoard records."),
        opt("change_bias_after_training", bool, False, "Refit the energy bias."),
        opt("profiling", bool, False, "Profile training."),
        opt("profiling_file", str, "timeline.json", "Profiling output."),
        opt("enable_compile", bool, False, "Compile the model (PT)."),
    ]
    return Argument("training", dict, fields, doc="The training options.")


def check_training(section: dict[str, Any]) -> None:
    """Cross-key checks of a normalized ``training`` section.

    Parameters
    ----------
    section : dict
        The normalized ``training`` section.

    Raises
    ------
    ConfigError
        If a step count or frequency is out of range.
    """
    if section["numb_steps"] < 0:
        raise ConfigError(f"training/numb_steps = {section['numb_steps']} must be >= 0")
    for key in ("disp_freq", "save_freq", "max_ckpt_keep"):
        if section[key] < 1:
            raise ConfigError(f"training/{key} = {section[key]} must be >= 1")
    validation = section.get("validation_data")
    if validation is not None and validation["numb_btch"] < 1:
        raise ConfigError(
            "training/validation_data/numb_btch = "
            f"{validation['numb_btch']} must be >= 1"
        )
