"""Weighted sums of table rows, and their gradient in the weights, for float64 tables.

``out[s] = sum_l weight[s, l] * table[index[s, l]]`` is the product of a sparse (nseg,
nrows) matrix with the table. :func:`csr_row_sum` forms that product as a CSR matrix
(MKL on every intra-op thread) and :func:`row_dots` the dot products ``grad[s] .
table[index[s, l]]`` that make its gradient in the weights (the backward kernel of
``embedding_bag``, also on every thread); neither is differentiable, so callers wire the
gradient themselves: :class:`backends.pt.scripted_table.ScriptTable` in a ``.pth``
program, a custom autograd function in the eager modules
(:func:`backends.pt.model.weighted_row_sum`). ``embedding_bag`` of a float64 table with
per-sample weights runs on one thread at about 40 ns per weighted row of 100 columns (4 ns
in float32); measured on the two tables of a ``[25, 50, 100]`` water model (192 atoms, 2
threads), the CSR product and the dot products took 2.0 to 2.5 ms where ``embedding_bag``
forward and backward took 5.5 to 8.3 ms.

:func:`bag_sum` is the differentiable ``embedding_bag`` form (in ``table`` and ``weight``),
for a table that is trained or a second derivative: it hands the first half of the bags
to ``torch.jit.fork`` (the inter-op thread pool) and sums the second half itself, when
there are at least :data:`FORK_MIN_BAGS` bags. Measured with a table of 8160 rows and 100
columns, 552 weighted rows per bag, 2 CPU cores: 768 bags took 12.5 instead of 23.9 ms
forward (27 instead of 35 ms with the backward pass); the split gained at 192 bags but not
at 96.

Scripted, so the TorchScript program of a ``.pth`` file and the eager modules call the same code.
"""

import torch
import torch.nn.functional as F

#: bags from which :func:`bag_sum` splits the work over two threads
FORK_MIN_BAGS = 128


@torch.jit.script
def _bags(index: torch.Tensor, table: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.embedding_bag(index, table, per_sample_weights=weight, mode="sum")


@torch.jit.script
def bag_sum(index: torch.Tensor, table: torch.Tensor, weight: torch.Tensor, fork_min_bags: int) -> torch.Tensor:
    """``out[s] = sum_l weight[s, l] * table[index[s, l]]``: (nseg, L) int64, (nrows, ncol), (nseg, L) -> (nseg, ncol).

    Differentiable in ``table`` and ``weight``; split from ``fork_min_bags`` bags on (:data:`FORK_MIN_BAGS`).
    """
    nbags = index.shape[0]
    if nbags < fork_min_bags:
        return _bags(index, table, weight)
    half = nbags // 2
    first = torch.jit.fork(_bags, index[:half], table, weight[:half])
    second = _bags(index[half:], table, weight[half:])
    return torch.cat([torch.jit.wait(first), second], 0)


@torch.jit.script
def csr_row_sum(index: torch.Tensor, table: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``out[s] = sum_l weight[s, l] * table[index[s, l]]`` as one CSR product (``embedding_bag`` off the CPU):
    (nseg, L) int64, (nrows, ncol), (nseg, L) -> (nseg, ncol). Not differentiable (:func:`row_dots` gives the
    gradient)."""
    nseg, width = index.shape[0], index.shape[1]
    if width == 0:
        return torch.zeros([nseg, table.shape[1]], dtype=table.dtype, device=table.device)
    if table.device.type != "cpu":  # the CPU's reason (a one-thread float64 kernel) is not a GPU's
        return _bags(index, table, weight.detach())
    crow = torch.arange(0, nseg * width + 1, width, dtype=torch.int64, device=index.device)
    matrix = torch.sparse_csr_tensor(crow, index.reshape(-1), weight.detach().reshape(-1).to(table.dtype),
                                     [nseg, table.shape[0]], dtype=table.dtype)
    return torch.sparse.mm(matrix, table)


@torch.jit.script
def row_dots(grad: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[s, l] = grad[s] . table[index[s, l]]``: (nseg, ncol), (nrows, ncol), (nseg, L) int64 -> (nseg, L),
    the gradient of :func:`csr_row_sum` in its weights."""
    nseg, width = index.shape[0], index.shape[1]
    if width == 0:
        return torch.zeros([nseg, 0], dtype=table.dtype, device=table.device)
    offsets = torch.arange(0, nseg * width, width, dtype=torch.int64, device=index.device)
    owner = torch.arange(nseg, dtype=torch.int64, device=index.device).repeat_interleave(width)
    dots = torch.ops.aten._embedding_bag_per_sample_weights_backward(
        grad.to(table.dtype), table, index.reshape(-1), offsets, owner, 0, -1)
    return dots.reshape(nseg, width)
