"""Models, systems and assertions shared by the TensorFlow backend tests."""

from __future__ import annotations

import numpy as np

from dpmodel.descriptor import DescrptSeR
from dpmodel.fitting import EnergyFitting
from dpmodel.model import EnergyModel
from dpmodel.stat import compute_descriptor_stat
from systems import System, make_model, random_system

TOL = {"float64": 1e-10, "float32": 1e-5}
SEL, NEURON, FITTING = (20, 20), (4, 8, 16), (16, 16)


class TwoSide(DescrptSeR):
    """dpmodel's descriptor with TensorFlow's capabilities, to build two-side dicts in NumPy."""

    backend = "tf"


#: model kinds: keyword arguments of ``systems.make_model``
KINDS: dict[str, dict] = {
    "one_side": {"descriptor_options": {"resnet_dt": True, "exclude_types": [[0, 1]]}},
    "float32": {"descriptor_options": {"precision": "float32"}, "fitting_options": {"precision": "float32"}},
    "params": {"fitting_options": {"numb_fparam": 2, "numb_aparam": 1}, "sel": (4, 5),
               "model_options": {"atom_exclude_types": [1], "pair_exclude_types": [[0, 0]]}},
    "two_side": {"descriptor_class": TwoSide,
                 "descriptor_options": {"type_one_side": False, "exclude_types": [[0, 1]],
                                        "activation_function": "softplus"}},
}


def system(kind: str = "triclinic", natoms: int = 10, seed: int = 0) -> System:
    return random_system(kind, natoms=natoms, seed=seed)


def model_dict(kind: str, sys_: System | None = None) -> dict:
    """Serialized model of ``kind`` (``KINDS`` or ``"type_embedding"``) with statistics from ``sys_``."""
    sys_ = sys_ or system()
    if kind == "type_embedding":
        return type_embedding_dict(sys_)
    options = dict(KINDS[kind])
    sel = options.pop("sel", SEL)
    model = make_model(sys_, sel=sel, neuron=NEURON, fitting=FITTING, **options)
    if model.fitting.numb_fparam:
        model.fitting.fparam_avg = np.array([0.3, -0.2])
        model.fitting.fparam_inv_std = np.array([2.0, 0.5])
    return model.serialize()


def type_embedding_dict(sys_: System, width: int = 8) -> dict:
    """A type-embedding model: fitting input ``[D, T(t)]``, one shared fitting net."""
    from backends.tf.modules import TypeEmbedNet

    desc = DescrptSeR(4.0, 0.5, list(SEL), list(NEURON), seed=3)
    compute_descriptor_stat(desc, [(sys_.coord, sys_.atype, sys_.box)])
    fit = EnergyFitting(2, desc.dim_out + width, list(FITTING), seed=4, mixed_types=True)
    fit.nets.networks[0].layers[-1].w = fit.nets.networks[0].layers[-1].w * 100.0
    fit.bias_atom_e = np.array([[0.4], [-0.3]])
    data = EnergyModel(desc, fit, ["T0", "T1"]).serialize()
    tebd = TypeEmbedNet(2, [4, width], resnet_dt=True, padding=True, use_tebd_bias=True, seed=5)
    data["type_embedding"] = tebd.serialize()
    return data


def fparam_aparam(data: dict, sys_: System) -> tuple[np.ndarray | None, np.ndarray | None]:
    nf, nat = sys_.atype.shape
    rng = np.random.default_rng(11)
    nfp, nap = data["fitting"]["numb_fparam"], data["fitting"]["numb_aparam"]
    return (rng.normal(size=(nf, nfp)) if nfp else None, rng.normal(size=(nf, nat, nap)) if nap else None)


def assert_close(actual, expected, tol: float, name: str = "") -> None:
    """Shape first, then values (absolute and relative tolerance ``tol``)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=name)


def energy_fd(energy, coord: np.ndarray, box: np.ndarray | None, atoms: list[int], step: float = 1e-5):
    """Central finite differences of ``energy(coord, box) -> float``: forces (len(atoms), 3) and virial (9,)."""
    force = np.zeros((len(atoms), 3))
    for k, i in enumerate(atoms):
        for a in range(3):
            plus, minus = coord.copy(), coord.copy()
            plus[i, a] += step
            minus[i, a] -= step
            force[k, a] = -(energy(plus, box) - energy(minus, box)) / (2 * step)
    if box is None:
        return force, None
    cell = box.reshape(3, 3)
    de = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            strain = np.zeros((3, 3))
            strain[a, b] = step
            e = [energy(coord @ (np.eye(3) + s), (cell @ (np.eye(3) + s)).reshape(9)) for s in (strain, -strain)]
            de[a, b] = (e[0] - e[1]) / (2 * step)
    return force, (-de.T).reshape(9)
