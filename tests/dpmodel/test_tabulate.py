"""Compression tables: DeePMD-kit's range and layout, the quintic fit, the lookup, the continuation outside."""

import numpy as np
import pytest

from dpmodel.network import EmbeddingNet
from dpmodel.table import TableInfo, TabulatedEmbedding
from dpmodel.tabulate import build_table, env_range


@pytest.fixture(scope="module")
def net():
    return EmbeddingNet(1, [4, 8, 16], seed=3)


INFO = TableInfo(-1.0, 3.0, 15.0, 0.01, 0.1)


def test_env_range_is_deepmd_formula():
    davg = np.array([0.3, 0.05])[:, None, None] * np.ones((2, 5, 1))
    dstd = np.array([0.2, 0.1])[:, None, None] * np.ones((2, 5, 1))
    lower, upper = env_range(davg, dstd, 0.5, 6.0, 0.9)
    u = (0.9 - 0.5) / 5.5
    s_max = (1 - 10 * u**3 + 15 * u**4 - 6 * u**5) / 0.9
    np.testing.assert_array_equal(lower, np.floor(-davg[:, 0, 0] / dstd[:, 0, 0]))
    np.testing.assert_array_equal(upper, np.ceil((s_max - davg[:, 0, 0]) / dstd[:, 0, 0]))


def test_layout_holds_value_and_derivatives_at_knots(net):
    data = build_table(net, INFO)
    assert INFO.nspline == 400 + 120 and data.shape == (INFO.nspline, 6 * 16)
    knots = INFO.knots(np.arange(INFO.nspline))
    value, d1, d2 = net.call_with_derivatives(knots[:, None], 2)
    np.testing.assert_array_equal(data[:, 0::6], value)
    np.testing.assert_array_equal(data[:, 1::6], d1)
    np.testing.assert_array_equal(data[:, 2::6], 0.5 * d2)


def test_quintic_matches_the_next_knot(net):
    data = build_table(net, INFO).reshape(INFO.nspline, 16, 6)
    knots = INFO.knots(np.arange(INFO.nspline + 1))
    h = np.diff(knots)[:, None]
    powers = np.arange(6)
    value = np.sum(data * h[..., None] ** powers, axis=-1)
    slope = np.sum(data[..., 1:] * powers[1:] * h[..., None] ** (powers[1:] - 1), axis=-1)
    curve = np.sum(data[..., 2:] * (powers[2:] * (powers[2:] - 1)) * h[..., None] ** (powers[2:] - 2), axis=-1)
    v, d1, d2 = net.call_with_derivatives(knots[1:, None], 2)
    np.testing.assert_allclose(value, v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(slope, d1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(curve, d2, rtol=0, atol=1e-5)


def test_table_reproduces_the_net_between_knots(net):
    table = TabulatedEmbedding(build_table(net, INFO), INFO)
    x = np.random.default_rng(0).uniform(INFO.lower, INFO.bound, size=(4000, 1))
    value, slope = table.call_with_derivatives(x, 1)
    ref_value, ref_slope = net.call_with_derivatives(x, 1)
    np.testing.assert_allclose(value, ref_value, rtol=0, atol=1e-10)
    np.testing.assert_allclose(slope, ref_slope, rtol=0, atol=1e-8)
    np.testing.assert_allclose(table.call(x), value, rtol=1e-14, atol=1e-14)  # value-only path


def locate_xx(x: float, info: TableInfo) -> tuple[int, float]:
    """DeePMD-kit's C++ ``locate_xx`` for in-range inputs (row, offset from its knot)."""
    if x < info.upper:
        row = int((x - info.lower) / info.stride1)
        return row, x - (row * info.stride1 + info.lower)
    first = int((info.upper - info.lower) / info.stride1)
    row = first + int((x - info.upper) / info.stride2)
    return row, x - ((row - first) * info.stride2 + info.upper)


def test_lookup_follows_locate_xx_inside_the_range():
    rows = np.arange(INFO.nspline, dtype=np.float64)
    data = np.zeros((INFO.nspline, 6))
    data[:, 0], data[:, 1] = rows, 1.0  # P_k(dx) = k + dx
    table = TabulatedEmbedding(data, INFO)
    x = np.random.default_rng(1).uniform(INFO.lower, INFO.bound, size=500)
    expected = np.array([sum(locate_xx(v, INFO)) for v in x])
    np.testing.assert_allclose(table.call(x[:, None])[:, 0], expected, rtol=0, atol=1e-12)


def test_out_of_range_continues_linearly(net):
    table = TabulatedEmbedding(build_table(net, INFO), INFO)
    for end, outside in ((INFO.lower, np.array([-1.5, -3.0, -8.0])), (INFO.bound, np.array([15.5, 20.0, 40.0]))):
        edge_value, edge_slope = (a[0] for a in table.call_with_derivatives(np.array([[end]]), 1))
        if end == INFO.bound:  # the last interval, evaluated at its right end
            edge_value, edge_slope = (a[0] for a in table.call_with_derivatives(np.array([[end - 1e-12]]), 1))
        value, slope = table.call_with_derivatives(outside[:, None], 1)
        np.testing.assert_allclose(value, edge_value + edge_slope * (outside - end)[:, None], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(slope, np.broadcast_to(edge_slope, slope.shape), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(table.call(outside[:, None]), value, rtol=1e-12, atol=1e-12)  # value-only path
