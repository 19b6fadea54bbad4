"""Schema of the ``loss`` section (type ``ener``; SPEC 8.3).

Each prefactor moves from ``start_pref_*`` to ``limit_pref_*`` as the learning rate
decays (``dpmodel.schedule.prefactor``); a term is active only if one of its two
prefactors is nonzero.
"""

from __future__ import annotations

from dargs import Argument, Variant

from dpmodel.config.common import opt

__all__ = ["loss_args"]

#: label -> (start_pref, limit_pref, what the term fits)
PREFACTORS: dict[str, tuple[float, float, str]] = {
    "e": (0.02, 1.0, "energy"),
    "f": (1000.0, 1.0, "force"),
    "v": (0.0, 0.0, "virial"),
    "ae": (0.0, 0.0, "atomic energy"),
    "pf": (0.0, 0.0, "atom-weighted force"),
    "gf": (0.0, 0.0, "generalized force"),
}


def _prefactor_args() -> list[Argument]:
    """``start_pref_<x>`` and ``limit_pref_<x>`` for every label."""
    fields = []
    for label, (start, limit, what) in PREFACTORS.items():
        fields.append(
            opt(f"start_pref_{label}", float, start, f"Initial {what} prefactor.")
        )
        fields.append(
            opt(f"limit_pref_{label}", float, limit, f"Final {what} prefactor.")
        )
    return fields


def loss_ener() -> Argument:
    """The ``ener`` loss choice."""
    fields = [
        *_prefactor_args(),
        opt("relative_f", [float, None], None, "Relative force error floor."),
        opt("enable_atom_ener_coeff", bool, False, "Weight atomic energies."),
        opt("numb_generalized_coord", int, 0, "Generalized coordinates."),
        opt("use_huber", bool, False, "Huber loss instead of squared error."),
        opt("huber_delta", float, 0.01, "Threshold of the Huber loss."),
    ]
    return Argument("ener", dict, fields, doc="Energy/force/virial loss.")


def loss_args() -> Argument:
    """Return the ``loss`` section schema."""
    variant = Variant("type", [loss_ener()], True, "ener", "Loss type.")
    return Argument(
        "loss",
        dict,
        sub_variants=[variant],
        optional=True,
        default={},
        doc="The loss function.",
    )
