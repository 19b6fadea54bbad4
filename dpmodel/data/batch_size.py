"""Batch-size rules of ``training_data.batch_size`` (SPEC 8.6).

==============  ============================================================
rule            frames per batch for a system of ``nat`` atoms
==============  ============================================================
``int``         that many, for every system
``"auto"``      same as ``"auto:32"``
``"auto:N"``    smallest ``bs`` with ``bs * nat >= N`` (``ceil(N / nat)``)
``"max:N"``     largest ``bs`` with ``bs * nat <= N``, at least 1
``"filter:N"``  as ``"max:N"``; systems with more than ``N`` atoms are dropped
==============  ============================================================

``"mixed:N"`` (mixed-type batches) is refused: ``se_e2_r`` is not a mixed-type
descriptor.
"""

from __future__ import annotations

from dpmodel.errors import ConfigError

__all__ = ["batch_size_for", "filter_limit", "parse_rule"]

_KINDS = ("auto", "max", "filter")


def parse_rule(rule: int | str) -> tuple[str, int]:
    """Split a batch-size rule into ``(kind, number)``.

    Parameters
    ----------
    rule : int or str
        ``4``, ``"auto"``, ``"auto:N"``, ``"max:N"`` or ``"filter:N"``.

    Returns
    -------
    tuple of (str, int)
        ``("int", bs)``, ``("auto", N)``, ``("max", N)`` or ``("filter", N)``.

    Raises
    ------
    ConfigError
        For any other value, naming the accepted forms.
    """
    if isinstance(rule, bool):
        raise _bad(rule)
    if isinstance(rule, int):
        if rule < 1:
            raise _bad(rule)
        return "int", rule
    if not isinstance(rule, str):
        raise _bad(rule)
    if rule == "auto":
        return "auto", 32
    kind, _, number = rule.partition(":")
    if kind == "mixed":
        raise ConfigError(
            f"batch_size {rule!r} (mixed-type batches) is not supported: se_e2_r "
            "is not a mixed-type descriptor; use 'auto:N' or an integer"
        )
    if kind not in _KINDS or not number.isdigit() or int(number) < 1:
        raise _bad(rule)
    return kind, int(number)


def batch_size_for(rule: int | str, natoms: int) -> int:
    """Return the frames per batch that ``rule`` gives a system of ``natoms`` atoms.

    Parameters
    ----------
    rule : int or str
        A batch-size rule (see the module table).
    natoms : int
        Atoms per frame of the system.

    Returns
    -------
    int
        Frames per batch, >= 1.
    """
    kind, number = parse_rule(rule)
    if kind == "int":
        return number
    if kind == "auto":
        return -(-number // natoms)
    return max(number // natoms, 1)


def filter_limit(rule: int | str) -> int | None:
    """Return ``N`` for a ``"filter:N"`` rule (max atoms per system), else None."""
    kind, number = parse_rule(rule)
    return number if kind == "filter" else None


def _bad(rule: object) -> ConfigError:
    """Build the error for an unrecognised batch-size rule."""
    return ConfigError(
        f"batch_size = {rule!r} is not valid; expected a positive int, 'auto', "
        "'auto:N', 'max:N' or 'filter:N' with integer N >= 1"
    )
