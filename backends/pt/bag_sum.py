"""Weighted sums of table rows by ``embedding_bag``, split over two threads for many bags.

The CPU ``embedding_bag`` of float64 tables with per-sample weights runs on one thread.
:func:`bag_sum` hands the first half of the bags to ``torch.jit.fork`` (the inter-op
thread pool) and sums the second half itself, when there are at least
:data:`FORK_MIN_BAGS` bags; autograd runs through both halves. Measured with a table of
8160 rows and 100 columns, 552 weighted rows per bag, 2 CPU cores: 768 bags took 12.5
instead of 23.9 ms forward (27 instead of 35 ms with the backward pass). Forward and
backward together, the split gained at 192 bags (7.3 instead of 8.7 ms) but not at 96,
so the threshold lies between and one 192-atom frame (192 bags per neighbour type) is
split: its compressed ``.pth`` evaluation of a ``[25, 50, 100]`` water model took 1 to 2 ms
(about 5 %) less, paired in one process.

Scripted, so the TorchScript program of a ``.pth`` file (:mod:`backends.pt.scripted_table`)
and the eager modules (:func:`backends.pt.model.weighted_row_sum`) call the same code.
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
