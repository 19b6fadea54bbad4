r"""Model compression: embedding nets replaced by tables of quintic polynomials.

An embedding net :math:`\mathcal G: \mathbb R \to \mathbb R^{n_g}` of ``se_e2_r`` is
sampled on knots :math:`x_k` covering the range of the normalised environment
:math:`\hat s`: stride :math:`s_1` on :math:`[l, u)`, stride :math:`s_2` on
:math:`[u, e\,u)`. On interval :math:`k` of width :math:`h` the table holds, per output
channel, the quintic :math:`P_k(\delta) = \sum_{m=0}^{5} a_m \delta^m` that matches value,
first and second derivative of the net at both knots (:math:`\Delta = v_{k+1} - v_k`):

.. math:: a_0 = v_k,\quad a_1 = d_k,\quad a_2 = d2_k/2,

          a_3 = \frac{20\Delta - (8d_{k+1} + 12d_k)h - (3d2_k - d2_{k+1})h^2}{2h^3},

          a_4 = \frac{-30\Delta + (14d_{k+1} + 16d_k)h + (3d2_k - 2d2_{k+1})h^2}{2h^4},

          a_5 = \frac{12\Delta - 6(d_{k+1} + d_k)h + (d2_{k+1} - d2_k)h^2}{2h^5},

so the table and its slope are continuous and forces stay smooth (DeePMD-kit
``deepmd/utils/tabulate.py``; Lu et al., J. Chem. Theory Comput. 18, 5559 (2022)).

Layout (DeePMD-kit's): ``data`` of shape (nspline, 6 ng), column ``6 j + m`` = :math:`a_m`
of channel :math:`j`; ``info`` = ``[lower, upper, extrapolate * upper, stride1, stride2,
check_frequency]``. The range per centre type :math:`c` comes from the statistics and
the smallest neighbour distance :math:`r_\min`:
:math:`l_c = \lfloor -\mu_c/\sigma_c \rfloor`,
:math:`u_c = \lceil (w(r_\min)/r_\min - \mu_c)/\sigma_c \rceil`.

The tables are evaluated by :class:`dpmodel.table.TabulatedEmbedding`.
"""

from __future__ import annotations

import logging

import numpy as np

from dpmodel.switch import switch
from dpmodel.table import TableInfo, TabulatedEmbedding

LOG = logging.getLogger("dpmodel.tabulate")


def env_range(davg: np.ndarray, dstd: np.ndarray, rcut_smth: float, rcut: float,
              min_nbor_dist: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Integer bounds :math:`l_c, u_c` of :math:`\hat s` per centre type.

    Parameters
    ----------
    davg, dstd : shape (ntypes, nnei, 1); slot 0 of each centre type is used.
    rcut_smth, rcut : Å
    min_nbor_dist : smallest neighbour distance in the data; Å

    Returns
    -------
    lower, upper : shape (ntypes,), float (integral values)
    """
    mean = np.asarray(davg, dtype=np.float64)[:, 0, 0]
    std = np.asarray(dstd, dtype=np.float64)[:, 0, 0]
    weight, _ = switch(np.asarray(min_nbor_dist, dtype=np.float64), rcut_smth, rcut)
    s_max = float(weight) / min_nbor_dist
    return np.floor(-mean / std), np.ceil((s_max - mean) / std)


def net_ranges(lower: np.ndarray, upper: np.ndarray, sel: list[int], type_one_side: bool,
               present: list[bool]) -> list[tuple[float, float] | None]:
    r"""Input range ``(lower, upper)`` of every embedding net (flat NetworkCollection order).

    One-side net (any neighbour type): min of ``lower`` and max of ``upper`` over the
    centre types ``c`` with ``sel[c] > 0``. Every centre type is included, excluded
    pairs too: their padding slots, at :math:`-\mu_c/\sigma_c`, pass through every
    one-side net. (This is what DeePMD-kit 3.2.0 computes: its test for excluded pairs
    compares tuples with the lists of ``exclude_types`` and never matches.) Two-side net
    ``(c, t)`` (flat index ``c + ntypes * t``): ``lower[c]``, ``upper[c]``. ``None`` where
    ``present`` is false (no net, e.g. an excluded two-side pair) or no centre qualifies.
    """
    ntypes = len(sel)
    centres = [c for c in range(ntypes) if sel[c] > 0]
    ranges: list[tuple[float, float] | None] = []
    for index, exists in enumerate(present):
        if not exists:
            ranges.append(None)
        elif not type_one_side:
            ranges.append((float(lower[index % ntypes]), float(upper[index % ntypes])))
        elif centres:
            ranges.append((float(min(lower[c] for c in centres)), float(max(upper[c] for c in centres))))
        else:
            ranges.append(None)
    return ranges


def build_table(net, info: TableInfo, dtype: np.dtype = np.dtype(np.float64)) -> np.ndarray:
    """Quintic coefficients of ``net`` on the knots of ``info``; shape (nspline, 6 ng).

    ``net`` is any object with ``call_with_derivatives(x, order=2)`` for ``x`` of shape
    (n, 1) (an :class:`dpmodel.network.EmbeddingNet`). Built in float64, then cast.
    Knots come from :meth:`TableInfo.knots`, the lookup's own formula, and ``h`` is the
    spacing of consecutive knots (``stride1`` or ``stride2`` up to rounding), so table and
    lookup agree exactly; DeePMD-kit samples ``np.arange`` and uses the nominal strides,
    which differs by rounding only.
    """
    nspline = info.nspline
    if nspline <= 0 or info.upper <= info.lower:
        raise ValueError(f"cannot tabulate on [{info.lower}, {info.upper}) up to {info.bound}: "
                         "the range is empty; check davg/dstd and min_nbor_dist")
    x = info.knots(np.arange(nspline + 1))
    value, d1, d2 = (np.asarray(a, dtype=np.float64) for a in net.call_with_derivatives(x[:, None], 2))
    h = np.diff(x)[:, None]
    delta = value[1:] - value[:-1]
    d1a, d1b, d2a, d2b = d1[:-1], d1[1:], d2[:-1], d2[1:]
    coeffs = np.stack([
        value[:-1],
        d1a,
        0.5 * d2a,
        (20 * delta - (8 * d1b + 12 * d1a) * h - (3 * d2a - d2b) * h**2) / (2 * h**3),
        (-30 * delta + (14 * d1b + 16 * d1a) * h + (3 * d2a - 2 * d2b) * h**2) / (2 * h**4),
        (12 * delta - 6 * (d1b + d1a) * h + (d2b - d2a) * h**2) / (2 * h**5),
    ], axis=-1)  # (nspline, ng, 6)
    return coeffs.reshape(nspline, -1).astype(dtype)


def tabulate_embeddings(embeddings, davg: np.ndarray, dstd: np.ndarray, rcut_smth: float, rcut: float,
                        sel: list[int], type_one_side: bool, min_nbor_dist: float,
                        step: float = 0.01, extrapolate: float = 5, check_frequency: int = -1,
                        dtype: np.dtype = np.dtype(np.float64)) -> list[TabulatedEmbedding | None]:
    """Tables of every net of a descriptor's ``NetworkCollection`` (``None`` where skipped).

    Parameters
    ----------
    embeddings : :class:`dpmodel.network.NetworkCollection` of embedding nets
    davg, dstd : shape (ntypes, nnei, 1); the descriptor statistics
    min_nbor_dist : smallest neighbour distance in the training data; Å
    step : ``stride1``; ``stride2 = 10 * step``
    extrapolate : the coarse table ends at ``extrapolate * upper``
    check_frequency : overflow check period in evaluations; <= 0 is off
    dtype : table dtype (the descriptor precision)
    """
    if not min_nbor_dist > 0:
        raise ValueError(f"min_nbor_dist = {min_nbor_dist!r}: expected a positive distance in Å")
    if not step > 0 or not extrapolate >= 1:
        raise ValueError(f"step = {step!r}, extrapolate = {extrapolate!r}: expected step > 0 and extrapolate >= 1")
    lower, upper = env_range(davg, dstd, rcut_smth, rcut, min_nbor_dist)
    tables: list[TabulatedEmbedding | None] = []
    present = [net is not None for net in embeddings.networks]
    for net, bounds in zip(embeddings.networks, net_ranges(lower, upper, sel, type_one_side, present)):
        if bounds is None:
            tables.append(None)
            continue
        ll, uu = bounds
        info = TableInfo(ll, uu, extrapolate * uu, step, 10 * step, int(check_frequency))
        LOG.info("tabulating embedding net on [%g, %g) stride %g and [%g, %g) stride %g", ll, uu, step, uu,
                 info.bound, info.stride2)
        tables.append(TabulatedEmbedding(build_table(net, info, dtype), info))
    return tables


def serialize_tables(tables: list[TabulatedEmbedding | None], dtype: np.dtype) -> dict:
    """DeePMD-kit HEAD's ``compress`` entry; empty arrays stand for nets without a table."""
    empty = np.zeros((0,), dtype=dtype)
    data = [empty.copy() if t is None else np.array(np.asarray(t.data), dtype=dtype) for t in tables]
    info = [empty.copy() if t is None else t.info.to_array(dtype) for t in tables]
    return {"@variables": {"compress_data": data, "compress_info": info}}


def deserialize_tables(compress: dict, nnets: int, dtype: np.dtype) -> list[TabulatedEmbedding | None]:
    """Tables from a ``compress`` entry (``nnets`` entries expected)."""
    variables = compress.get("@variables", compress)
    data, info = variables.get("compress_data"), variables.get("compress_info")
    if data is None or info is None or len(data) != nnets or len(info) != nnets:
        raise ValueError(f"descriptor compress entry must hold compress_data and compress_info lists of "
                         f"{nnets} arrays (one per embedding net)")
    tables: list[TabulatedEmbedding | None] = []
    for table, numbers in zip(data, info):
        table = np.asarray(table, dtype=dtype)
        if table.size == 0:
            tables.append(None)
            continue
        parsed = TableInfo.from_array(numbers)
        if table.ndim != 2 or table.shape[1] % 6 or table.shape[0] < 1:
            raise ValueError(f"compress_data table of shape {table.shape}: expected (nspline, 6 * ng)")
        tables.append(TabulatedEmbedding(table, parsed))
    return tables
