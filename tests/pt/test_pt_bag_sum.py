"""``bag_sum``: the table-row sums split over two threads equal one ``embedding_bag``, gradients included."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.pt.bag_sum import FORK_MIN_BAGS, bag_sum  # noqa: E402


@pytest.mark.parametrize("nbags", [1, 7, FORK_MIN_BAGS + 3])
def test_split_sums_and_gradients_equal_one_embedding_bag(nbags):
    rng = np.random.default_rng(3)
    table0 = torch.from_numpy(rng.normal(size=(50, 6)))
    index = torch.from_numpy(rng.integers(0, 50, size=(nbags, 9)))
    weight0 = torch.from_numpy(rng.normal(size=(nbags, 9)))
    grad = torch.from_numpy(rng.normal(size=(nbags, 6)))
    results = []
    for fork_min_bags in (1, 10**9):  # always split, never split
        table, weight = table0.clone().requires_grad_(True), weight0.clone().requires_grad_(True)
        out = bag_sum(index, table, weight, fork_min_bags)
        out.backward(grad)
        results.append((out.detach(), table.grad, weight.grad))
    expected = torch.einsum("sl,slc->sc", weight0, table0[index])
    torch.testing.assert_close(results[1][0], expected, rtol=0, atol=1e-13)
    (out_split, table_split, weight_split), (out_whole, table_whole, weight_whole) = results
    torch.testing.assert_close(out_split, out_whole, rtol=0, atol=0)  # each bag is summed alike
    torch.testing.assert_close(weight_split, weight_whole, rtol=0, atol=0)
    torch.testing.assert_close(table_split, table_whole, rtol=0, atol=1e-13)  # two halves add up
