"""Autodiff forces and virials under jit against dpmodel's analytic ones; compile counts; jax-md energy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from backends.jax import modules
from backends.jax.model import TRACES, Runner, energy_fn, padded_size
from dpmodel.neighbor import neighbor_data
from jax_helpers import GRID, TOL, assert_close, build, compare_outputs, precision


@pytest.mark.parametrize("case,kind", GRID)
def test_outputs_match_dpmodel(case, kind):
    model, system, fparam, aparam = build(case, kind)
    expected = model.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True)
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    out = wrapped.call(system.coord, system.atype, system.box, fparam, aparam, do_atomic_virial=True)
    assert isinstance(out["force"], jax.Array) and out["force"].dtype == jnp.float64
    compare_outputs(out, expected, TOL[precision(case)])
    np.testing.assert_array_equal(np.asarray(out["mask"]), expected["mask"])


@pytest.mark.parametrize("case,kind", [("base", "triclinic"), ("base", "cluster"), ("float32", "small"),
                                       ("exclude_types", "triclinic"), ("gelu_softplus", "cluster")])
def test_descriptor_matches_dpmodel(case, kind):
    model, system, *_ = build(case, kind)
    desc = model.descriptor
    coord_ext, atype_ext, _, nlist = neighbor_data(system.coord, system.atype, system.box, desc.rcut, desc.sel)
    expected = desc.call(coord_ext, atype_ext, nlist)
    out = modules.EnergyModel.deserialize(model.serialize()).runner().descriptor(system.coord, system.atype, system.box)
    assert_close(out, expected, TOL[precision(case)], "descriptor")


def test_virtual_atoms_contribute_nothing():
    model, system, *_ = build("base", "triclinic")
    atype = system.atype.copy()
    atype[:, -3:] = -1
    expected = model.call(system.coord, atype, system.box, do_atomic_virial=True)
    out = Runner(modules.EnergyModel.deserialize(model.serialize())).call(system.coord, atype, system.box,
                                                                          atomic=True)
    compare_outputs(out, expected, 1e-10)
    assert np.all(out["force"][:, -3:] == 0) and np.all(out["atom_energy"][:, -3:] == 0)


@pytest.mark.parametrize("case", ["base", "fparam_aparam"])
def test_atoms_sorted_by_type_run_each_fitting_net_on_its_own_atoms(case, monkeypatch):
    """Frames whose atoms are sorted by type: the fitting nets on static blocks of atoms, dpmodel's outputs,
    as the masked nets give."""
    from backends.jax import model as jax_model

    model, system, fparam, aparam = build(case, "triclinic")
    order = np.argsort(system.atype[0], kind="stable")
    coord, atype = system.coord[:, order], system.atype[:, order]
    aparam = None if aparam is None else aparam[:, order]
    expected = model.call(coord, atype, system.box, fparam, aparam, do_atomic_virial=True)
    runner = Runner(modules.EnergyModel.deserialize(model.serialize()))
    compiled, seen = jax_model._lower_jit, []
    monkeypatch.setattr(jax_model, "_lower_jit", lambda *a, **k: seen.append(k["blocks"]) or compiled(*a, **k))
    out = runner.call(coord, atype, system.box, fparam, aparam, atomic=True)
    assert seen == [tuple(int(n) for n in np.bincount(atype[0], minlength=2))]
    compare_outputs(out, expected, 1e-10)
    coord_ext, atype_ext, mapping, nlist = neighbor_data(coord, atype, system.box, model.get_rcut(), model.get_sel())
    masked = runner.lower(coord_ext, atype_ext, nlist, mapping, fparam, aparam, True)
    assert seen[-1] is None
    compare_outputs({k: np.asarray(v) for k, v in masked.items()}, expected, 1e-10)


def test_one_compilation_for_a_100_frame_trajectory():
    """Moving atoms in a breathing cell: the padded shapes stay fixed, so one trace serves all frames."""
    model, system, *_ = build("resnet_dt", "triclinic", natoms=10, seed=3)
    runner = modules.EnergyModel.deserialize(model.serialize()).runner()
    rng = np.random.default_rng(5)
    before = TRACES["lower"]
    nall_seen = set()
    for step in range(100):
        scale = 1.0 + 0.02 * np.sin(step / 7.0)
        coord = (system.coord[:1] + rng.normal(scale=0.05, size=system.coord[:1].shape)) * scale
        box = system.box[:1] * scale
        out = runner.call(coord, system.atype[:1], box)
        nall_seen.add(neighbor_data(coord, system.atype[:1], box, model.get_rcut(), model.get_sel())[0].shape[1])
        if step % 33 == 0:
            expected = model.call(coord, system.atype[:1], box)
            assert_close(out["force"], expected["force"], 1e-10, "force")
    assert TRACES["lower"] - before == 1
    assert len({padded_size(n) for n in nall_seen}) == 1


def _ghosts_within_rcut(coord, atype, box, rcut, sel):
    """Extended atoms keeping only the ghosts within ``rcut`` of a local atom (an MD code's halo)."""
    coord_ext, atype_ext, mapping, nlist = neighbor_data(coord, atype, box, rcut, sel)
    nloc = atype.shape[1]
    dist = np.linalg.norm(coord_ext[0][:, None, :] - coord_ext[0][None, :nloc, :], axis=-1).min(axis=1)
    keep = np.flatnonzero((np.arange(dist.size) < nloc) | (dist <= rcut))
    new_index = np.full(dist.size, -1)
    new_index[keep] = np.arange(keep.size)
    nlist = np.where(nlist >= 0, new_index[np.maximum(nlist, 0)], -1)
    return coord_ext[:, keep], atype_ext[:, keep], nlist, mapping[:, keep]


def test_varying_ghost_counts_compile_once_per_bucket():
    model, system, *_ = build("base", "triclinic", natoms=10, seed=4)
    runner = modules.EnergyModel.deserialize(model.serialize()).runner()
    rng = np.random.default_rng(6)
    before = TRACES["lower"]
    sizes = []
    for step in range(12):
        coord = system.coord[:1] + rng.normal(scale=0.3, size=system.coord[:1].shape)
        inputs = _ghosts_within_rcut(coord, system.atype[:1], system.box[:1], model.get_rcut(), model.get_sel())
        sizes.append(inputs[0].shape[1])
        out = runner.lower(*inputs, atomic=True)
        if step % 4 == 0:
            compare_outputs(out, model.call_lower(*inputs, do_atomic_virial=True), 1e-10)
    assert len(set(sizes)) > 3, sizes  # the halo changes size ...
    assert TRACES["lower"] - before == len({padded_size(n) for n in sizes}) <= 2  # ... the compilations do not


def test_padded_size_buckets():
    assert [padded_size(n) for n in (1, 4, 5, 8, 9, 12, 13, 100, 540, 1000)] == [1, 4, 5, 8, 10, 12, 14, 112, 640, 1024]
    for n in range(1, 3000, 7):
        assert n <= padded_size(n) <= 1.25 * n + 1


@pytest.mark.parametrize("kind", ["triclinic", "cluster"])
def test_energy_fn_matches_model_and_is_differentiable(kind):
    """jax-md style E(positions, box): value, -grad = force, and -dE/d(strain) = virial."""
    model, system, *_ = build("base", kind, natoms=8)
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    expected = model.call(system.coord[:1], system.atype[:1], None if system.box is None else system.box[:1])
    fn = energy_fn(wrapped, system.atype[0])
    with modules.x64():
        positions = jnp.asarray(system.coord[0])
        box = None if system.box is None else jnp.asarray(system.box[0].reshape(3, 3))
        energy, grad = jax.jit(jax.value_and_grad(fn))(positions, box)
        assert_close(energy, expected["energy"][0, 0], 1e-10, "energy")
        assert_close(-grad, expected["force"][0], 1e-10, "force")
        if box is not None:
            def strained(eps):
                deform = jnp.eye(3) + eps
                return fn(positions @ deform, box @ deform)

            virial = -jax.jit(jax.jacfwd(strained))(jnp.zeros((3, 3)))
            assert_close(virial.T.reshape(9), expected["virial"][0], 1e-10, "virial")


def test_energy_fn_is_nan_when_the_images_do_not_reach_rcut():
    model, system, *_ = build("base", "small", natoms=5)  # face distances below rcut: needs 2 images
    wrapped = modules.EnergyModel.deserialize(model.serialize())
    expected = model.call(system.coord[:1], system.atype[:1], system.box[:1])
    box = system.box[0].reshape(3, 3)
    with modules.x64():
        assert np.isnan(float(energy_fn(wrapped, system.atype[0], images=1)(system.coord[0], box)))
        complete = energy_fn(wrapped, system.atype[0], images=2)(system.coord[0], box)
    assert_close(complete, expected["energy"][0, 0], 1e-10, "energy")


def test_compressed_models_use_their_own_tables():
    """Tables are arguments and their bounds part of the compiled structure: two compressed models
    whose tables have equal shapes but shifted knots give each their own dpmodel result."""
    from dpmodel.compress import compress_model_dict
    from dpmodel.model_factory import model_from_dict

    model, system, *_ = build("resnet_dt", "triclinic")
    plain = compress_model_dict(model.serialize(), 0.9, step=0.05)
    shifted = compress_model_dict(model.serialize(), 0.9, step=0.05)
    stride = float(plain["descriptor"]["compress"]["@variables"]["compress_info"][0][3])
    for info in shifted["descriptor"]["compress"]["@variables"]["compress_info"]:
        info[:3] += 0.5 * stride  # same number of rows, different knots
    results = []
    for data in (plain, shifted):
        expected = model_from_dict(data).call(system.coord, system.atype, system.box, do_atomic_virial=True)
        out = modules.model_from_dict(data).call(system.coord, system.atype, system.box, do_atomic_virial=True)
        compare_outputs(out, expected, 1e-10)
        results.append(expected["energy"])
    assert np.abs(results[0] - results[1]).max() > 1e-8  # the shift matters


def test_table_overflow_is_reported_from_compiled_code(caplog, tmp_path):
    """``check_frequency`` counts reach the host through jax.debug.callback; .hlo programs carry no callback."""
    from backends.jax import io as jax_io
    from dpmodel.compress import compress_model_dict
    from dpmodel.model_factory import model_from_dict

    model, system, *_ = build("base", "triclinic")
    data = compress_model_dict(model.serialize(), 2.0, step=0.05, extrapolate=1.5, frequency=1)  # too-short tables
    with caplog.at_level("WARNING", logger="dpmodel.table"):
        out = modules.model_from_dict(data).call(system.coord, system.atype, system.box)
    assert any("outside the compressed table range" in r.getMessage() for r in caplog.records)
    expected = model_from_dict(data).call(system.coord, system.atype, system.box)
    assert_close(out["force"], expected["force"], 1e-10, "force")
    jax_io.save(tmp_path / "model.hlo", {"model": data})
    hlo = jax_io.Evaluator(tmp_path / "model.hlo").evaluate(system.coord, system.box, system.atype)
    assert_close(hlo["force"], expected["force"], 1e-10, "force")
