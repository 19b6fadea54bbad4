r"""A tabulated embedding net: table lookup and quintic evaluation on the array API.

Interval :math:`k` of a table (:mod:`dpmodel.tabulate`) starts at knot
:math:`x_k = l + k s_1` (:math:`k < n_1 = \lfloor (u - l)/s_1 \rfloor`) or
:math:`x_k = u + (k - n_1) s_2`; an input :math:`x` uses row
:math:`k = \lfloor (x - l)/s_1 \rfloor` below :math:`u`, :math:`n_1 + \lfloor (x - u)/s_2
\rfloor` above, and :math:`\delta = x - x_k` (C++ ``locate_xx`` of DeePMD-kit).

Out of range (a choice; DeePMD-kit's C++ op instead clamps to a constant): the table is
continued linearly with the slope at the nearest end,
:math:`\mathcal G(x) \approx P(c) + P'(c)(x - c)`, :math:`c = \mathrm{clip}(x, l, e\,u)`,
which is DeePMD-kit HEAD's array-API rule. Value and slope stay continuous, so forces
remain the exact gradient of the energy everywhere. With ``check_frequency > 0`` every
``check_frequency``-th evaluation counts the inputs outside :math:`[l, e\,u)` and logs a
warning (:data:`LOG`); counts accumulate in :attr:`TabulatedEmbedding.overflow`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from dpmodel.xp import Array, array_namespace, as_array, device, row_dots, weighted_row_sum

LOG = logging.getLogger("dpmodel.table")


@dataclass(frozen=True)
class TableInfo:
    """The six numbers of DeePMD-kit's ``table_info``.

    Attributes
    ----------
    lower, upper : bounds of the fine table (stride ``stride1``)
    bound : ``extrapolate * upper``, end of the coarse table (stride ``stride2``)
    stride1, stride2 : knot spacings
    check_frequency : overflow check every this many evaluations; <= 0 is off
    """

    lower: float
    upper: float
    bound: float
    stride1: float
    stride2: float
    check_frequency: int = -1

    @classmethod
    def from_array(cls, info: Array) -> "TableInfo":
        values = [float(v) for v in np.asarray(info, dtype=np.float64).reshape(-1)]
        if len(values) != 6:
            raise ValueError(f"compress_info holds {len(values)} numbers; expected 6 "
                             "[lower, upper, extrapolate*upper, stride1, stride2, check_frequency]")
        return cls(*values[:5], int(values[5]))

    def to_array(self, dtype: np.dtype) -> np.ndarray:
        return np.array([self.lower, self.upper, self.bound, self.stride1, self.stride2,
                         self.check_frequency], dtype=dtype)

    @property
    def fine_rows(self) -> int:
        """Number of intervals of the fine table, ``int((upper - lower) / stride1)``."""
        return int((self.upper - self.lower) / self.stride1)

    @property
    def nspline(self) -> int:
        """Number of intervals, ``int((upper - lower)/stride1 + (bound - upper)/stride2)``."""
        return int((self.upper - self.lower) / self.stride1 + (self.bound - self.upper) / self.stride2)

    def knots(self, index: Array) -> Array:
        """Left knot of interval ``index`` (any namespace); knot ``nspline`` ends the table."""
        xp = array_namespace(index)
        n1 = self.fine_rows
        fine = self.lower + xp.astype(index, xp.float64) * self.stride1
        coarse = self.upper + xp.astype(index - n1, xp.float64) * self.stride2
        return xp.where(index < n1, fine, coarse)

@dataclass(eq=False)
class TabulatedEmbedding:
    """An embedding net replaced by its table; the interface of an ``EmbeddingNet``.

    Attributes
    ----------
    data : shape (nspline, 6 ng); quintic coefficients (module docstring).
    info : the table's bounds and strides.
    overflow : inputs seen outside ``[lower, bound)`` by the checks so far.
    """

    data: Array
    info: TableInfo
    overflow: int = 0
    calls: int = field(default=0, repr=False)
    _rows: np.ndarray | None = field(default=None, init=False, repr=False)

    @property
    def ng(self) -> int:
        return int(self.data.shape[1]) // 6

    def rows(self, xp, like: Array) -> Array:
        """``data`` as (6 nspline, ng): row ``6k + m`` holds :math:`a_{km}` of every channel."""
        if self._rows is None and isinstance(self.data, np.ndarray):
            self._rows = np.ascontiguousarray(self.data.reshape(-1, self.ng, 6).transpose(0, 2, 1)).reshape(-1, self.ng)
        if self._rows is not None:
            return as_array(xp, self._rows, like)
        data = as_array(xp, self.data, like)
        return xp.reshape(xp.permute_dims(xp.reshape(data, (data.shape[0], self.ng, 6)), (0, 2, 1)), (-1, self.ng))

    def holding_rows(self, rows: Array) -> "TabulatedEmbedding":
        """A copy whose :meth:`rows` is ``rows``, the same table already in that layout (e.g. a
        backend's jit argument), so no evaluation permutes ``data`` again; shape (6 nspline, ng)."""
        expected = (6 * int(self.data.shape[0]), self.ng)
        if tuple(rows.shape) != expected:
            raise ValueError(f"rows of shape {tuple(rows.shape)} for a table of {expected[0] // 6} intervals "
                             f"and {self.ng} channels; expected {expected}")
        table = TabulatedEmbedding(self.data, self.info)
        table._rows = rows
        return table

    def terms(self, x: Array, order: int = 0, check: bool = True) -> tuple[Array, ...]:
        r"""The table value as a weighted sum of :meth:`rows`: index, weight and slope weight.

        :math:`\mathcal G(x) = \sum_m w_m\,a_{km}` with row :math:`6k + m`,
        :math:`w_m = \delta^m + m\,\delta^{m-1}(x - c)` (the linear continuation outside
        the table folds into the weights: :math:`x - c` is zero inside), and
        :math:`\mathrm d\mathcal G/\mathrm dx = \sum_m m\,\delta^{m-1} a_{km}`.

        Parameters
        ----------
        x : shape (...), float
        order : 1 also returns the slope weights
        check : count inputs outside the table (the overflow check); off for a second pass over the same inputs

        Returns
        -------
        index : shape (..., 6), int64, rows of :meth:`rows`
        weight : shape (..., 6), dtype of ``x``
        slope_weight : shape (..., 6), only with ``order`` 1
        """
        xp = array_namespace(x)
        info = self.info
        if check:
            self._check_overflow(xp, xp.reshape(x, (-1,)))
        inside = xp.clip(x, info.lower, info.bound)
        fine = xp.floor((inside - info.lower) / info.stride1)
        coarse = info.fine_rows + xp.floor((inside - info.upper) / info.stride2)
        row = xp.astype(xp.where(inside < info.upper, fine, coarse), xp.int64)
        row = xp.clip(row, 0, int(self.data.shape[0]) - 1)
        dx = inside - xp.astype(info.knots(row), x.dtype)
        beyond = x - inside
        one, d2 = xp.ones_like(dx), dx * dx
        d3 = d2 * dx
        powers = [one, dx, d2, d3, d2 * d2, d3 * d2]
        slopes = [xp.zeros_like(dx), one, 2.0 * dx, 3.0 * d2, 4.0 * d3, 5.0 * (d2 * d2)]
        weight = xp.stack([p + q * beyond for p, q in zip(powers, slopes)], axis=-1)
        index = row[..., None] * 6 + xp.arange(6, dtype=xp.int64, device=device(row))
        if order == 0:
            return index, weight
        return index, weight, xp.stack(slopes, axis=-1)

    def call(self, x: Array) -> Array:
        """Table value for ``x`` of shape (..., 1); returns (..., ng)."""
        return self.call_with_derivatives(x, 0)[0]

    def call_with_derivatives(self, x: Array, order: int = 1, check: bool = True) -> tuple[Array, ...]:
        """Value and, with ``order`` 1, the slope d value / dx; each (..., ng).

        Parameters
        ----------
        x : shape (..., 1), float
        order : 0 or 1 (a table holds no useful second derivative beyond its knots)
        check : count inputs outside the table (an evaluation of the overflow check)
        """
        if order > 1:
            raise ValueError("a tabulated embedding provides derivatives up to order 1")
        xp = array_namespace(x)
        lead = tuple(x.shape[:-1])
        index, *weights = self.terms(xp.reshape(x, (-1,)), order, check)
        coeffs = xp.take(self.rows(xp, x), xp.reshape(index, (-1,)), axis=0)
        coeffs = xp.reshape(coeffs, (-1, 6, self.ng))  # (n, 6, ng)
        return tuple(xp.reshape(xp.matmul(w[:, None, :], coeffs)[:, 0, :], (*lead, self.ng)) for w in weights)

    def sum_slots(self, x: Array, scale: Array | None = None) -> Array:
        r"""Sum of the values over the last axis, without forming each slot's (ng,) value.

        Parameters
        ----------
        x : shape (nseg, L), float; ``L`` slots per row
        scale : shape (nseg, 1) or None; multiplies every slot of a row (a centre-type mask)

        Returns
        -------
        Array, shape (nseg, ng): :math:`\sum_l \mathcal G(x_{sl})`, differentiable in ``x``
        """
        xp = array_namespace(x)
        nseg, width = x.shape
        index, weight = self.terms(x)
        rows = self.rows(xp, x)
        # the row of delta^0 has weight 1 and depends on x only through which row it is: summed on its
        # own with constant weights, no gradient pass computes its dot products (a sixth of them)
        ones = xp.ones((nseg, width), dtype=weight.dtype, device=device(weight))
        constant = weighted_row_sum(rows, index[..., 0], ones if scale is None else ones * scale)
        varying = xp.reshape(weight[..., 1:], (nseg, width * 5))
        if scale is not None:
            varying = varying * scale
        return constant + weighted_row_sum(rows, xp.reshape(index[..., 1:], (nseg, width * 5)), varying)

    def slot_slopes(self, x: Array, grad: Array) -> Array:
        r""":math:`\mathrm d\mathcal G(x_{sl})/\mathrm dx \cdot g_s` for every slot, from one matrix product.

        Parameters
        ----------
        x : shape (nseg, L), float
        grad : shape (nseg, ng); :math:`g_s`, the gradient with respect to row ``s`` of :meth:`sum_slots`

        Returns
        -------
        Array, shape (nseg, L)
        """
        xp = array_namespace(x, grad)
        nseg, width = x.shape
        index, _, slope = self.terms(x, 1, check=False)
        # the slope weight of delta^0 is zero: only the other five rows of each slot
        dots = row_dots(self.rows(xp, x), xp.reshape(index[..., 1:], (nseg, width * 5)), grad)
        return xp.sum(xp.reshape(dots, (nseg, width, 5)) * slope[..., 1:], axis=-1)

    def _check_overflow(self, xp, flat: Array) -> None:
        """Every ``check_frequency`` calls, count and report inputs outside the table."""
        frequency = self.info.check_frequency
        if frequency <= 0:
            return
        outside = (flat < self.info.lower) | (flat >= self.info.bound)
        for is_namespace, deliver in _REPORTERS:
            if is_namespace(xp):
                deliver(xp.sum(xp.astype(outside, xp.int64)), self.record)
                return
        self.calls += 1
        if self.calls % frequency:
            return
        try:
            count = int(xp.sum(xp.astype(outside, xp.int64)))
        except TypeError:  # traced (jit) values cannot be counted on the host
            LOG.warning("tabulation overflow check skipped: inputs are traced (jit) and no overflow reporter "
                        "is registered for this namespace; evaluate eagerly to check [%g, %g)",
                        self.info.lower, self.info.bound)
            return
        self._report(count)

    def record(self, count: Any) -> None:
        """One evaluation's count of inputs outside the table (for registered reporters)."""
        self.calls += 1
        if self.info.check_frequency > 0 and self.calls % self.info.check_frequency == 0:
            self._report(int(count))

    def _report(self, count: int) -> None:
        if count:
            self.overflow += count
            LOG.warning("%d environment values outside the compressed table range [%g, %g) at "
                        "evaluation %d (total so far %d): extrapolated linearly; retabulate with "
                        "a larger -e/--extrapolate or a smaller min_nbor_dist",
                        count, self.info.lower, self.info.bound, self.calls, self.overflow)


_REPORTERS: list[tuple[Callable[[Any], bool], Callable[[Array, Callable[[Any], None]], None]]] = []


def register_overflow_reporter(is_namespace: Callable[[Any], bool],
                               deliver: Callable[[Array, Callable[[Any], None]], None]) -> None:
    """Let a backend deliver overflow counts from compiled code, e.g. ``jax.debug.callback``.

    ``deliver(count, record)`` must arrange ``record(count)`` to run on the host at every
    evaluation; without a reporter, counts of traced arrays cannot be taken and the
    check is skipped with a warning.
    """
    _REPORTERS.append((is_namespace, deliver))
