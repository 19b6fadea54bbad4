r"""Statistics from data: environment ``davg``/``dstd`` and the energy output bias.

Environment (per centre type :math:`t`, over all ``nnei`` slots of all sampled atoms of
type :math:`t`, padding slots counted as zeros):

.. math:: \mu_t = \frac{\sum s}{N_t n_\mathrm{nei}},\qquad
          \sigma_t = \sqrt{\frac{\sum s^2}{N_t n_\mathrm{nei}} - \mu_t^2},

with :math:`\sigma_t` replaced by ``protection`` (1e-2) when smaller, and the defaults
:math:`\mu = 0, \sigma = 0.1` for a type absent from the data. The energy bias solves
:math:`\min_\beta \| N \beta - E \|` by least squares over frames, :math:`N` the per-type
atom counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from dpmodel.descriptor import DescrptSeR
from dpmodel.env_mat import pair_displacements, radial_env
from dpmodel.neighbor import neighbor_data

PROTECTION = 1e-2


@dataclass
class EnvStat:
    """Running per-type sums of the raw environment ``s`` (count, sum, squared sum)."""

    ntypes: int
    count: np.ndarray = field(init=False)
    total: np.ndarray = field(init=False)
    squared: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.count = np.zeros(self.ntypes)
        self.total = np.zeros(self.ntypes)
        self.squared = np.zeros(self.ntypes)

    def add(self, s: np.ndarray, atype: np.ndarray) -> None:
        """Accumulate ``s`` (nf, nloc, nnei) of centres with types ``atype`` (nf, nloc)."""
        for t in range(self.ntypes):
            values = s[atype == t]
            self.count[t] += values.size
            self.total[t] += values.sum()
            self.squared[t] += (values * values).sum()

    def mean_std(self, protection: float = PROTECTION) -> tuple[np.ndarray, np.ndarray]:
        """Per-type mean and standard deviation, shape (ntypes,) each."""
        seen = self.count > 0
        count = np.where(seen, self.count, 1.0)
        mean = np.where(seen, self.total / count, 0.0)
        std = np.sqrt(np.maximum(self.squared / count - mean**2, 0.0))
        std = np.where(np.abs(std) < protection, protection, std)
        return mean, np.where(seen, std, 0.1)


def env_stat(descriptor: DescrptSeR, frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> EnvStat:
    """Environment sums of ``descriptor`` over ``(coord (nf,nloc,3), atype (nf,nloc), box (nf,9)|None)`` batches."""
    stat = EnvStat(descriptor.ntypes)
    for coord, atype, box in frames:
        coord_ext, atype_ext, _, nlist = neighbor_data(coord, atype, box, descriptor.rcut, descriptor.sel)
        env = radial_env(pair_displacements(coord_ext, nlist), nlist, descriptor.rcut, descriptor.rcut_smth,
                         descriptor.env_protection)
        s = env.s * descriptor.exclusion_mask(atype_ext, nlist)
        stat.add(np.asarray(s, dtype=np.float64), np.asarray(atype))
    return stat


def compute_descriptor_stat(descriptor: DescrptSeR, frames, protection: float = PROTECTION) -> None:
    """Set ``davg``/``dstd`` of ``descriptor`` from data (``set_davg_zero`` honoured)."""
    mean, std = env_stat(descriptor, frames).mean_std(protection)
    descriptor.set_stat(mean, std)


def energy_bias(energy: np.ndarray, type_counts: np.ndarray, rcond: float | None = None,
                preset: list | None = None) -> np.ndarray:
    """Least-squares atomic energy per type.

    Parameters
    ----------
    energy : shape (nframes,) or (nframes, 1); eV
    type_counts : shape (nframes, ntypes); atoms of each type per frame
    rcond : passed to ``numpy.linalg.lstsq``
    preset : per-type fixed values (``None`` entries are fitted), e.g. from ``atom_ener``

    Returns
    -------
    shape (ntypes,); eV per atom. A type absent from every frame gets 0.
    """
    energy = np.asarray(energy, dtype=np.float64).reshape(-1)
    counts = np.asarray(type_counts, dtype=np.float64)
    ntypes = counts.shape[1]
    bias = np.zeros(ntypes)
    fixed = [t for t in range(ntypes) if preset is not None and t < len(preset) and preset[t] is not None]
    for t in fixed:
        bias[t] = float(preset[t])
    free = [t for t in range(ntypes) if t not in fixed]
    residual = energy - counts[:, fixed] @ bias[fixed] if fixed else energy
    if free:
        solution = np.linalg.lstsq(counts[:, free], residual, rcond=rcond)[0]
        bias[free] = solution
    return bias
