"""Data pre-flight: checks run before training, refusing data that would give wrong results.

=======================================  ==========  =====================================
check                                    outcome     why
=======================================  ==========  =====================================
element of ``type_map.raw`` not in       error       types would be mislabelled
``model/type_map``                                   (raised by :mod:`dpmodel.data`)
two atoms closer than 0.1 Å              error       the environment matrix diverges
more neighbours of a type than ``sel``   error       neighbours beyond ``sel`` are dropped:
                                                     energies jump; the message gives the
                                                     ``sel`` to use
cell face distance below ``rcut``        warning     correct (atoms see their own images),
                                                     but costly and often a mistake
=======================================  ==========  =====================================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from dpmodel.data import DataSystems, DeepmdSystem
from dpmodel.errors import DataError
from dpmodel.region import face_distances
from dpmodel.training.neighbor_stat import NeighborStat, auto_sel, system_neighbor_stat

__all__ = ["MIN_DISTANCE", "check_cells", "check_overlap", "check_sel", "preflight"]

log = logging.getLogger(__name__)

MIN_DISTANCE = 0.1
"""Closest allowed distance between two atoms, Å."""


def check_cells(system: DeepmdSystem, rcut: float) -> None:
    """Warn when a periodic cell is thinner than ``rcut`` in some frame."""
    if system.box is None:
        return
    faces = np.asarray(face_distances(system.box)).min(axis=1)
    thin = np.nonzero(faces < rcut)[0]
    if thin.size:
        log.warning("%s: in %d of %d frames the cell is thinner than rcut (face distance %.3f Å < rcut %.3f Å, "
                    "frame %d); atoms see their own periodic images: correct but slow, check the box",
                    system.path, thin.size, system.nframes, faces[thin[0]], rcut, int(thin[0]))


def check_overlap(stat: NeighborStat) -> None:
    """Refuse atoms closer than :data:`MIN_DISTANCE`."""
    if stat.min_dist < MIN_DISTANCE:
        name, frame, i, j = stat.closest
        raise DataError(f"{name}: frame {frame}: atoms {i} and {j} are {stat.min_dist:.4f} Å apart "
                        f"(< {MIN_DISTANCE} Å); overlapping atoms make the descriptor diverge: remove the frame")


def check_sel(stat: NeighborStat, sel: Sequence[int], rcut: float, type_map: Sequence[str]) -> None:
    """Refuse data with more neighbours of some type than ``sel`` allows, naming the ``sel`` to use."""
    over = [t for t in range(len(sel)) if stat.max_count[t] > sel[t]]
    if not over:
        return
    t = over[0]
    name, frame, atom = stat.busiest[t]
    need = [max(int(n), int(s)) for n, s in zip(stat.max_count, sel)]
    raise DataError(
        f"model/descriptor/sel = {list(sel)} is too small for the data: atom {atom} of {name} frame {frame} has "
        f"{stat.max_count[t]} neighbours of type {type_map[t]!r} within rcut = {rcut} Å, more than "
        f"sel[{t}] = {sel[t]}; neighbours beyond sel are dropped and energies become discontinuous: set sel to "
        f"at least {need} (sel \"auto\" would give {auto_sel(stat.max_count)})")


def preflight(train: DataSystems, valid: DataSystems | None, rcut: float, sel: Sequence[int] | str,
              type_map: Sequence[str]) -> NeighborStat:
    """Run every check on the training and validation systems.

    Parameters
    ----------
    train, valid : DataSystems
        Loaded systems (loading already refused unknown elements).
    rcut : float
        Cut-off radius, Å.
    sel : list of int or str
        ``model/descriptor/sel``; a string (``"auto"``) skips the ``sel`` check.
    type_map : list of str

    Returns
    -------
    NeighborStat
        Statistics of the training systems (for ``sel: "auto"`` and ``min_nbor_dist``).

    Raises
    ------
    DataError
        Naming the system, frame and atoms, and the fix.
    """
    ntypes = len(type_map)
    train_stat, every = NeighborStat(ntypes), NeighborStat(ntypes)
    groups = [(train, True)] + ([(valid, False)] if valid is not None else [])
    for data, is_train in groups:
        for system in data.systems:
            check_cells(system, rcut)
            stat = system_neighbor_stat(system, rcut, ntypes)
            check_overlap(stat)
            every.merge(stat)
            if is_train:
                train_stat.merge(stat)
    if not isinstance(sel, str):
        check_sel(every, sel, rcut, type_map)
    log.info("neighbour statistics: min distance %.4f Å, max neighbours per type %s",
             train_stat.min_dist, dict(zip(type_map, train_stat.max_count.tolist())))
    return train_stat
