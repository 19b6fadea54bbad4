"""Descriptor invariances, smoothness through the cut-offs, and options."""

import numpy as np
import pytest

from dpmodel.descriptor import DescrptSeR
from dpmodel.errors import ConfigError, UnsupportedOptionError
from dpmodel.neighbor import neighbor_data
from dpmodel.stat import compute_descriptor_stat
from systems import random_system

RCUT, RCUT_SMTH, SEL = 4.0, 0.5, [30, 30]


def descriptor_of(desc, coord, atype, box):
    coord_ext, atype_ext, _, nlist = neighbor_data(coord, atype, box, desc.rcut, desc.sel)
    return desc.call(coord_ext, atype_ext, nlist)


@pytest.fixture
def system():
    return random_system("triclinic", natoms=24, seed=3)


@pytest.fixture
def desc(system):
    d = DescrptSeR(RCUT, RCUT_SMTH, SEL, [6, 12, 24], resnet_dt=True, seed=7)
    compute_descriptor_stat(d, [(system.coord, system.atype, system.box)])
    return d


def rotation(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_translation(desc, system):
    ref = descriptor_of(desc, system.coord, system.atype, system.box)
    moved = descriptor_of(desc, system.coord + np.array([0.37, -1.4, 2.9]), system.atype, system.box)
    np.testing.assert_allclose(moved, ref, rtol=0, atol=1e-12)


def test_rotation_of_coordinates_and_cell(desc, system):
    rot = rotation(1)
    ref = descriptor_of(desc, system.coord, system.atype, system.box)
    box = (system.box.reshape(-1, 3, 3) @ rot).reshape(-1, 9)
    turned = descriptor_of(desc, system.coord @ rot, system.atype, box)
    np.testing.assert_allclose(turned, ref, rtol=0, atol=1e-12)


def test_permutation_permutes_outputs(desc, system):
    perm = np.random.default_rng(5).permutation(system.atype.shape[1])
    ref = descriptor_of(desc, system.coord, system.atype, system.box)
    shuffled = descriptor_of(desc, system.coord[:, perm], system.atype[:, perm], system.box)
    np.testing.assert_allclose(shuffled, ref[:, perm], rtol=0, atol=1e-12)


def test_wrapping_by_lattice_vectors(desc, system):
    shifts = np.random.default_rng(2).integers(-2, 3, size=system.coord.shape)
    cell = system.box.reshape(-1, 3, 3)
    moved = system.coord + shifts @ cell
    ref = descriptor_of(desc, system.coord, system.atype, system.box)
    np.testing.assert_allclose(descriptor_of(desc, moved, system.atype, system.box), ref, rtol=0, atol=1e-12)


def test_supercell_has_same_per_atom_descriptor(desc, system):
    cell = system.box.reshape(-1, 3, 3)
    images = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)], dtype=float)
    coord = np.concatenate([system.coord + (img @ cell)[:, None, :] for img in images], axis=1)
    atype = np.tile(system.atype, (1, 8))
    big = descriptor_of(desc, coord, atype, (cell * 2).reshape(-1, 9))
    ref = descriptor_of(desc, system.coord, system.atype, system.box)
    np.testing.assert_allclose(big, np.tile(ref, (1, 8, 1)), rtol=0, atol=1e-12)


def test_small_box_sees_several_images():
    small = random_system("small", seed=4)
    desc = DescrptSeR(RCUT, RCUT_SMTH, [60, 60], [4, 8], seed=1)
    coord_ext, atype_ext, mapping, nlist = neighbor_data(small.coord, small.atype, small.box, RCUT, desc.sel)
    # every neighbour within rcut found: compare with a brute-force image sum
    cell = small.box[0].reshape(3, 3)
    rng = np.arange(-3, 4)
    shifts = np.array([[a, b, c] for a in rng for b in rng for c in rng]) @ cell
    pos = small.coord[0]
    d = np.linalg.norm(pos[None, :, None, :] + shifts[None, None] - pos[:, None, None, :], axis=-1)
    expected = ((d > 1e-9) & (d <= RCUT)).sum(axis=(1, 2))
    np.testing.assert_array_equal((nlist[0] >= 0).sum(axis=1), expected)
    assert expected.max() > small.atype.shape[1]  # more neighbours than atoms: several images


def _pair_descriptor(desc, r):
    """Descriptor of atom 0 with one neighbour at distance r (cluster)."""
    coord = np.array([[[0.0, 0.0, 0.0], [r, 0.0, 0.0]]])
    return descriptor_of(desc, coord, np.array([[0, 1]]), None)[0, 0]


def _one_sided_jumps(f, x, h):
    left1 = (f(x) - f(x - h)) / h
    right1 = (f(x + h) - f(x)) / h
    left2 = (f(x) - 2 * f(x - h) + f(x - 2 * h)) / h**2
    right2 = (f(x + 2 * h) - 2 * f(x + h) + f(x)) / h**2
    return np.abs(left1 - right1).max(), np.abs(left2 - right2).max(), np.abs(left2).max() + np.abs(right2).max()


@pytest.mark.parametrize("where", [RCUT_SMTH + 0.0, RCUT])
def test_smooth_through_cutoffs(where):
    desc = DescrptSeR(RCUT, RCUT_SMTH, [2, 2], [6, 12], seed=3)
    desc.set_stat(np.array([0.2, 0.3]), np.array([0.4, 0.5]))
    f = lambda r: _pair_descriptor(desc, r)  # noqa: E731
    h = 1e-4
    jump1, jump2, curvature = _one_sided_jumps(f, where, h)
    # C2 function: one-sided first differences differ by O(h), second by O(h) too
    assert jump1 < 20 * h * max(curvature, 1.0)
    assert jump2 < 1e-2 * max(curvature, 1.0) + 1e-3
    # the check is able to fail: a hard cut-off (1/r without switch) jumps at rcut
    hard = lambda r: np.array([1.0 / r if r <= RCUT else 0.0])  # noqa: E731
    assert _one_sided_jumps(hard, RCUT, h)[0] > 1.0


def test_values_continuous_at_rcut():
    desc = DescrptSeR(RCUT, RCUT_SMTH, [2, 2], [6, 12], seed=3)
    desc.set_stat(np.array([0.2, 0.3]), np.array([0.4, 0.5]))
    inside, outside = _pair_descriptor(desc, RCUT - 1e-9), _pair_descriptor(desc, RCUT + 1e-9)
    np.testing.assert_allclose(inside, outside, rtol=0, atol=1e-12)


def test_padding_slots_contribute_embedding_of_minus_mean_over_std():
    desc = DescrptSeR(RCUT, RCUT_SMTH, [3, 2], [4, 8], seed=9)
    desc.set_stat(np.array([0.2, 0.3]), np.array([0.4, 0.5]))
    coord = np.array([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
    got = descriptor_of(desc, coord, np.array([[0, 1]]), None)[0, 0]
    r = 2.0
    u = (r - RCUT_SMTH) / (RCUT - RCUT_SMTH)
    s = (1 - 10 * u**3 + 15 * u**4 - 6 * u**5) / r
    pad = -0.2 / 0.4
    g0 = desc.embeddings[(0,)].call(np.array([[pad]]))[0]
    g1 = desc.embeddings[(1,)].call(np.array([[(s - 0.2) / 0.4], [pad]]))
    expected = 0.2 / 5 * (3 * g0 + g1.sum(axis=0))
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)


def test_exclude_types_zeroes_normalised_entry_but_keeps_it():
    desc = DescrptSeR(RCUT, RCUT_SMTH, [1, 1], [4, 8], exclude_types=[[0, 1]], seed=9)
    desc.set_stat(np.array([0.2, 0.3]), np.array([0.4, 0.5]))
    coord = np.array([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
    got = descriptor_of(desc, coord, np.array([[0, 1]]), None)[0, 0]
    g0 = desc.embeddings[(0,)].call(np.array([[-0.5]]))[0]
    g1 = desc.embeddings[(1,)].call(np.array([[0.0]]))[0]
    np.testing.assert_allclose(got, 0.2 / 2 * (g0 + g1), rtol=1e-13, atol=1e-14)


def test_float32_descriptor_close_to_float64(system):
    d64 = DescrptSeR(RCUT, RCUT_SMTH, SEL, [6, 12, 24], seed=7)
    d32 = DescrptSeR.deserialize({**d64.serialize(), "precision": "float32"})
    ref = descriptor_of(d64, system.coord, system.atype, system.box)
    got = descriptor_of(d32, system.coord, system.atype, system.box)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"rcut_smth": 5.0}, "rcut_smth"),
        ({"sel": [-1, 3]}, "sel[0]"),
        ({"activation_function": "swish2"}, "activation_function"),
        ({"precision": "float128"}, "precision"),
        ({"exclude_types": [[0, 5]]}, "exclude_types"),
    ],
)
def test_bad_parameters_name_the_key(kwargs, key):
    base = dict(rcut=RCUT, rcut_smth=RCUT_SMTH, sel=[4, 4])
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        DescrptSeR(**{**base, **kwargs})


@pytest.mark.parametrize("option, value", [("type_one_side", False), ("spin", {"use_spin": [True]})])
def test_refusals_name_option_and_supporting_backend(option, value):
    with pytest.raises(UnsupportedOptionError) as err:
        DescrptSeR(RCUT, RCUT_SMTH, [4, 4], **{option: value})
    assert option in str(err.value)
    if option == "type_one_side":
        assert "TensorFlow" in str(err.value)


def test_defaults_match_deepmd():
    d = DescrptSeR(6.0, 0.5, [46, 92])
    assert d.neuron == [24, 48, 96] and d.resnet_dt is False and d.type_one_side is True
    assert d.env_protection == 0.0 and d.activation_function == "tanh" and d.precision == "float64"
    assert d.dim_out == 96 and d.get_nsel() == 138 and not d.mixed_types()
