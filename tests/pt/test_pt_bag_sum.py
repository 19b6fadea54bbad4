"""Table-row sums: ``bag_sum`` split over two threads equals one ``embedding_bag``, gradients included;
the CSR form and its row dot products equal gathered rows."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.pt.bag_sum import FORK_MIN_BAGS, bag_sum, csr_row_sum, row_dots  # noqa: E402


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


def _table_case(nseg: int = 5, width: int = 8, nrows: int = 12, ncol: int = 4):
    rng = np.random.default_rng(7)
    table = torch.from_numpy(rng.normal(size=(nrows, ncol)))
    index = torch.from_numpy(rng.integers(0, nrows, size=(nseg, width)))
    index[0, 1] = index[0, 0]  # a repeated row within one segment adds up
    weight = torch.from_numpy(rng.normal(size=(nseg, width)))
    return table, index, weight


def test_csr_row_sum_and_row_dots_against_gathered_rows():
    table, index, weight = _table_case()
    gathered = table[index]  # (nseg, width, ncol)
    torch.testing.assert_close(csr_row_sum(index, table, weight), torch.einsum("sl,slc->sc", weight, gathered),
                               rtol=0, atol=1e-13)
    grad = torch.from_numpy(np.random.default_rng(8).normal(size=(5, 4)))
    torch.testing.assert_close(row_dots(grad, table, index), torch.einsum("sc,slc->sl", grad, gathered),
                               rtol=0, atol=1e-13)
    empty = index[:, :0]
    assert csr_row_sum(empty, table, weight[:, :0]).abs().sum() == 0
    assert row_dots(grad, table, empty).shape == (5, 0)


def test_eager_weighted_row_sum_gradients():
    """The CSR form's gradient in the weights is autograd's through ``embedding_bag``; a trained table keeps
    ``embedding_bag``, and a second derivative through the CSR form is refused, not wrong."""
    from backends.pt.model import weighted_row_sum

    table, index, weight0 = _table_case()
    grad = torch.from_numpy(np.random.default_rng(9).normal(size=(5, 4)))
    weight = weight0.clone().requires_grad_(True)
    (weight_grad,) = torch.autograd.grad(weighted_row_sum(table, index, weight), weight, grad)
    reference = weight0.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(bag_sum(index, table, reference, 10**9), reference, grad)
    torch.testing.assert_close(weight_grad, expected, rtol=0, atol=1e-13)
    trained = table.clone().requires_grad_(True)
    (table_grad,) = torch.autograd.grad(weighted_row_sum(trained, index, weight0), trained, grad)
    scattered = torch.zeros_like(table).index_add(0, index.reshape(-1), (weight0[:, :, None] * grad[:, None, :]).reshape(-1, 4))
    torch.testing.assert_close(table_grad, scattered, rtol=0, atol=1e-13)
    weight, upstream = weight0.clone().requires_grad_(True), grad.clone().requires_grad_(True)
    (first,) = torch.autograd.grad(weighted_row_sum(table, index, weight), weight, upstream, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):  # as training on forces would need
        first.sum().backward()
