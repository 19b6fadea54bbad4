"""Slot sums of a table without per-slot values: ``weighted_row_sum``, ``row_dots``, ``sum_slots``."""

import array_api_strict
import numpy as np
import pytest

from dpmodel.network import EmbeddingNet
from dpmodel.table import TableInfo, TabulatedEmbedding
from dpmodel.tabulate import build_table
from dpmodel.xp import row_dots, weighted_row_sum

RNG = np.random.default_rng(7)
TABLE = RNG.normal(size=(40, 5))
INDEX = RNG.integers(0, 40, size=(6, 9))
INDEX[0, :3] = 11  # a repeated row adds up
WEIGHT = RNG.normal(size=(6, 9))


def loop_row_sum(table, index, weight):
    out = np.zeros((index.shape[0], table.shape[1]))
    for s in range(index.shape[0]):
        for k, w in zip(index[s], weight[s]):
            out[s] += w * table[k]
    return out


def namespaces():
    yield "numpy", np.asarray
    yield "array-api-strict", array_api_strict.asarray
    try:
        import torch  # noqa: F401
        import backends.pt.model  # noqa: F401  (registers embedding_bag)
        yield "torch", torch.from_numpy
    except ImportError:
        pass


@pytest.mark.parametrize("name,convert", list(namespaces()), ids=lambda v: v if isinstance(v, str) else "")
def test_weighted_row_sum_and_row_dots_equal_loops(name, convert):
    out = np.asarray(weighted_row_sum(convert(TABLE), convert(INDEX), convert(WEIGHT)))
    np.testing.assert_allclose(out, loop_row_sum(TABLE, INDEX, WEIGHT), rtol=0, atol=1e-13)
    vectors = RNG.normal(size=(6, 5))
    dots = np.asarray(row_dots(convert(TABLE), convert(INDEX), convert(vectors)))
    np.testing.assert_allclose(dots, np.einsum("slc,sc->sl", TABLE[INDEX], vectors), rtol=0, atol=1e-13)


def test_empty_rows_give_zeros():
    out = weighted_row_sum(TABLE, np.zeros((3, 0), dtype=np.int64), np.zeros((3, 0)))
    np.testing.assert_array_equal(out, np.zeros((3, 5)))


@pytest.fixture(scope="module")
def table():
    info = TableInfo(-1.0, 3.0, 15.0, 0.01, 0.1)
    return TabulatedEmbedding(build_table(EmbeddingNet(1, [4, 8], seed=5), info), info)


def test_sum_slots_equals_summed_values_in_and_beyond_the_table(table):
    x = RNG.uniform(-3.0, 20.0, size=(4, 7))  # below lower, inside, coarse part, beyond bound
    value, slope = table.call_with_derivatives(x[..., None], 1)
    scale = RNG.normal(size=(4, 1))
    np.testing.assert_allclose(table.sum_slots(x), value.sum(axis=1), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(table.sum_slots(x, scale), scale * value.sum(axis=1), rtol=1e-13, atol=1e-13)
    grad = RNG.normal(size=(4, table.ng))
    np.testing.assert_allclose(table.slot_slopes(x, grad), np.einsum("slc,sc->sl", slope, grad), rtol=1e-13, atol=1e-13)


def test_slot_slopes_are_finite_differences_of_sum_slots(table):
    x = RNG.uniform(-3.0, 20.0, size=(3, 5))
    grad = RNG.normal(size=(3, table.ng))
    h = 1e-6
    numeric = np.zeros_like(x)
    for s, l in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[s, l] += h
        down[s, l] -= h
        numeric[s, l] = np.sum((table.sum_slots(up) - table.sum_slots(down))[s] * grad[s]) / (2 * h)
    np.testing.assert_allclose(table.slot_slopes(x, grad), numeric, rtol=1e-6, atol=1e-8)


def test_portable_dense_form_equals_loops(monkeypatch):
    """The scatter-add and product form the portable sum takes for wide rows."""
    import dpmodel.xp as dpxp

    monkeypatch.setattr(dpxp, "DENSE_ROW_SUM_RATIO", 0)
    xp = array_api_strict
    out = np.asarray(weighted_row_sum(xp.asarray(TABLE), xp.asarray(INDEX), xp.asarray(WEIGHT)))
    np.testing.assert_allclose(out, loop_row_sum(TABLE, INDEX, WEIGHT), rtol=0, atol=1e-13)


def test_a_table_holding_its_rows_sums_as_from_its_data(table):
    """``holding_rows`` (a backend's copy of the rows layout, e.g. a jit argument) gives the same
    sums as the table that permutes its coefficients itself; a wrong shape is refused."""
    x = RNG.uniform(-3.0, 20.0, size=(4, 7))
    rows = array_api_strict.asarray(table.rows(np, table.data))
    strict = TabulatedEmbedding(array_api_strict.asarray(table.data), table.info)
    held = strict.holding_rows(rows)
    assert held.rows(array_api_strict, rows) is rows
    expected = np.asarray(strict.sum_slots(array_api_strict.asarray(x)))
    np.testing.assert_array_equal(np.asarray(held.sum_slots(array_api_strict.asarray(x))), expected)
    np.testing.assert_allclose(expected, table.sum_slots(x), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="rows of shape"):
        table.holding_rows(table.data)


@pytest.mark.parametrize("ncol", [1, 20, 32, 33, 37, 64, 100, 128, 240])
def test_row_dot_lanes_are_the_fewest_that_keep_each_sum_short(ncol):
    from dpmodel.xp import ROW_DOT_MAX_REDUCE, row_dot_lanes

    lanes = row_dot_lanes(ncol)
    fitting = [k for k in range(1, ncol) if ncol % k == 0 and ncol // k <= ROW_DOT_MAX_REDUCE]
    assert lanes == (fitting[0] if fitting else 1)
    assert ncol % lanes == 0
