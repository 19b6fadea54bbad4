r"""A compressed embedding net in the TorchScript program of a ``.pth`` file.

:class:`ScriptTable` ports the value of dpmodel's
:meth:`dpmodel.table.TabulatedEmbedding.call_with_derivatives` with the same formulas:
clip :math:`c = \mathrm{clip}(x, l, e\,u)`, row :math:`k` from the fine stride
:math:`s_1` below :math:`u` and the coarse stride :math:`s_2` above (clipped to the last
row), :math:`\delta = c - x_k` with the knots of :meth:`dpmodel.table.TableInfo.knots`,
the quintic :math:`P_k(\delta) = \sum_m a_{km}\delta^m`, and outside the table the linear
continuation with the slope at the nearest end, folded into the weights of
:meth:`dpmodel.table.TabulatedEmbedding.terms`:

.. math:: \mathcal G(x) = P_k(\delta) + P'_k(\delta)\,(x - c)
          = \sum_m \big(\delta^m + m\,\delta^{m-1}(x - c)\big)\,a_{km}.

Only the value is written: forces come from ``torch.autograd``, and the autograd of this
expression is dpmodel's slope everywhere, because :math:`\partial c/\partial x` is 1 inside
the table and 0 outside, so the derivative is :math:`P'_k(\delta)` inside and :math:`g`
outside (:math:`x - c` has derivative 0 inside, the ends included).
The continuation terms are formed only when some input lies outside the table; inside,
they and their derivatives are zero (about 1 ms of a compressed 192-atom water frame).

The descriptor needs only the sum of :math:`\mathcal G` over the neighbour slots of an atom,
and that sum is linear in the coefficients: the table as (6 nspline, ng) rows (row
:math:`6k + m` holds :math:`a_{km}` of every channel), six indices :math:`6k + m` per slot
weighted by :math:`\delta^m` (:meth:`ScriptTable.terms`), one sparse row per atom. No
(pairs, 6, ng) block of coefficients is gathered. A compressed program sums the rows by a
CSR product outside autograd (:meth:`ScriptTable.row_sums`) and forms their gradient as the
dot products of the incoming gradient with the rows of the varying weights
(:meth:`ScriptTable.weight_grads`, :mod:`backends.pt.bag_sum`); autograd carries those back
through the weights (:meth:`backends.pt.scripted.ScriptModel.table_energy_and_pair_grad`).
:meth:`ScriptTable.forward`, differentiable, sums by ``embedding_bag``.

Not ported: DeePMD-kit's overflow check (``check_frequency``, which counts inputs outside
:math:`[l, e\,u)` and logs a warning). The program evaluates those inputs with the same
linear continuation as dpmodel, silently.
"""

from typing import Tuple

import numpy as np
import torch

from backends.pt.bag_sum import FORK_MIN_BAGS, bag_sum, csr_row_sum, row_dots
from dpmodel.table import TabulatedEmbedding


class ScriptTable(torch.nn.Module):
    """A :class:`dpmodel.table.TabulatedEmbedding` summed over slots, for TorchScript.

    Attributes
    ----------
    rows : buffer of shape (6 nspline, ng), table dtype; row ``6k + m`` holds :math:`a_{km}` of every channel
    powers : buffer of shape (6,), int64; ``0..5``
    lower, upper, bound, stride1, stride2 : the table's bounds and strides (units of :math:`\\hat s`)
    fine_rows, nrows, ng : intervals of the fine table, intervals in all, output channels
    fork_min_bags : atoms from which the sum runs on two threads (:data:`backends.pt.bag_sum.FORK_MIN_BAGS`)
    """

    fine_rows: int
    nrows: int
    ng: int
    fork_min_bags: int

    def __init__(self, table: TabulatedEmbedding) -> None:
        super().__init__()
        info = table.info
        data = np.asarray(table.data)
        self.lower, self.upper, self.bound = float(info.lower), float(info.upper), float(info.bound)
        self.stride1, self.stride2 = float(info.stride1), float(info.stride2)
        self.fine_rows, self.nrows, self.ng = int(info.fine_rows), int(data.shape[0]), int(table.ng)
        self.fork_min_bags = FORK_MIN_BAGS
        rows = np.asarray(table.rows(np, data))  # (6 nspline, ng)
        self.register_buffer("rows", torch.from_numpy(np.array(rows, dtype=data.dtype, copy=True)))
        self.register_buffer("powers", torch.arange(6, dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over slots of the table value: ``x`` (nf, nloc, nsel, 1) -> (nf, nloc, ng).

        ``x`` in the table dtype (units of :math:`\\hat s`); differentiable in ``x``.
        """
        nf, nloc = x.shape[0], x.shape[1]
        index, weights = self.terms(x)
        if index.shape[1] == 0:
            return torch.zeros([nf, nloc, self.ng], dtype=x.dtype, device=x.device)
        return bag_sum(index, self.rows, weights, self.fork_min_bags).reshape(nf, nloc, self.ng)

    def terms(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Rows and weights of the sum over slots of ``x`` (nf, nloc, nsel, 1), one bag per atom:
        ``index`` (nf nloc, 6 nsel) int64 and ``weights`` (nf nloc, 6 nsel), differentiable in ``x``."""
        index, weights, _ = self.terms_and_offsets(x)
        return index, weights

    def terms_and_offsets(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`terms` and each slot's offset :math:`\\delta` from its row's knot, (nf nloc, nsel)."""
        nf, nloc, width = x.shape[0], x.shape[1], x.shape[2]
        bags = nf * nloc
        flat = x.reshape(-1)
        inside = torch.clamp(flat, self.lower, self.bound)
        fine = torch.floor((inside - self.lower) / self.stride1)
        coarse = self.fine_rows + torch.floor((inside - self.upper) / self.stride2)
        row = torch.clamp(torch.where(inside < self.upper, fine, coarse).to(torch.int64), 0, self.nrows - 1)
        # TableInfo.knots: float64 knots, then the input dtype
        index = row.to(torch.float64)
        knot = torch.where(row < self.fine_rows, self.lower + index * self.stride1,
                           self.upper + (index - self.fine_rows) * self.stride2)
        dx = inside - knot.to(flat.dtype)
        one = torch.ones_like(dx)
        d2 = dx * dx
        d3 = d2 * dx
        weights = torch.stack([one, dx, d2, d3, d2 * d2, d3 * d2], dim=-1)  # (n, 6)
        if bool(torch.any(flat != inside)):  # some input outside: the linear continuation
            beyond = flat - inside  # zero inside, with zero derivative there
            slopes = torch.stack([torch.zeros_like(dx), one, 2.0 * dx, 3.0 * d2, 4.0 * d3, 5.0 * (d2 * d2)], dim=-1)
            weights = weights + slopes * beyond[:, None]
        index6 = (row[:, None] * 6 + self.powers).reshape(bags, width * 6)
        return index6, weights.reshape(bags, width * 6), dx.reshape(bags, width)

    def row_sums(self, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``out[a] = sum_l weights[a, l] rows[index[a, l]]``, (bags, ng), one CSR product
        (:func:`backends.pt.bag_sum.csr_row_sum`); not differentiable: :meth:`weight_grads` gives the gradient."""
        return csr_row_sum(index, self.rows, weights)

    def weight_grads(self, grad: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``grad[a] . rows[index[a, 6 j + m]]`` for ``m >= 1``: the gradient of :meth:`row_sums` with respect to
        the weights that vary, for ``grad`` (bags, ng); (bags, nsel, 5).

        The ``m = 0`` weights are 1 everywhere (slope 0 in the continuation), so their dot products,
        a sixth of the work, are never needed.
        """
        bags, width = index.shape[0], index.shape[1] // 6
        varying = index.reshape(bags, width, 6)[:, :, 1:].reshape(bags, width * 5)
        return row_dots(grad, self.rows, varying).reshape(bags, width, 5)

    def slot_grads(self, grad: torch.Tensor, index: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        r"""Gradient of the sum over slots with respect to each slot's input, (bags, nsel), for ``grad``
        (bags, ng), from :meth:`terms_and_offsets`' ``index`` and ``offset``.

        The slope of weight :math:`m` is :math:`m\,\delta^{m-1}` inside the table and in its linear
        continuation alike, so the gradient is :math:`\sum_{m \ge 1} m\,\delta^{m-1}\, g \cdot a_{km}`
        (Horner's scheme over the :meth:`weight_grads` dot products).
        """
        dots = self.weight_grads(grad, index)  # (bags, nsel, 5)
        slope = 5.0 * dots[:, :, 4]
        for m in [4, 3, 2, 1]:
            slope = float(m) * dots[:, :, m - 1] + offset * slope
        return slope
