"""Import of DeePMD-kit TensorFlow frozen models (``dp --tf freeze``) of se_e2_r energy models.

A DeePMD-kit ``.pb`` runs on DeePMD's C++ ops, which this backend does not use; only its
constants are read. The hyper-parameters come from ``train_attr/training_script`` (the
normalised ``input.json``), the parameters from the frozen variables (DeePMD-kit 3.2.0
names):

======================================== ===============================================================
node                                     holds
======================================== ===============================================================
``descrpt_attr/t_avg``, ``t_std``        davg, dstd, shape (ntypes, nnei)
``filter_type_all/matrix_{l}_{t}``       one-side embedding net of neighbour type t, layer l >= 1
``filter_type_{i}/matrix_{l}_{j}``       two-side net of (centre i, neighbour j); also ``bias``, ``idt``
``layer_{k}_type_{t}/matrix``            fitting net of type t, hidden layer k >= 0; ``bias``, ``idt``
``final_layer_type_{t}/matrix``          its output layer; with a type embedding no ``_type_{t}``
``fitting_attr/t_bias_atom_e``           per-type energy bias, shape (ntypes,)
``fitting_attr/t_{f,a}param_{avg,istd}`` frame / atomic parameter statistics
``type_embed_net/matrix_{l}``            type-embedding net, layer l >= 1; ``bias``, ``idt``
``model_attr/tmap``                      type map, space separated
``model_attr/model_attr/t_out_bias``     output bias (1, ntypes, 1) (also ``model_attr/t_out_bias``)
``train_attr/min_nbor_dist``             minimal neighbour distance, when recorded
======================================== ===============================================================

The result is the envelope DeePMD-kit's ``serialize_from_file`` writes (``backend``,
``tf_version``, ``model``, ``model_def_script``, ``@variables.min_nbor_dist``), with the
model-level ``type_embedding`` extension (SPEC 7.2) where DeePMD-kit itself refuses to
export one. Two-side nets of excluded type pairs are written zeroed, as DeePMD-kit does;
they contribute nothing either way.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow as tf

from dpmodel.activation import canonical_activation
from dpmodel.errors import ModelFileError
from dpmodel.network import EmbeddingNet, FittingNet, Layer, NetworkCollection
from dpmodel.precision import canonical_precision, numpy_dtype

from backends.tf import modules

MARKERS = ("train_attr/training_script", "descrpt_attr/t_avg")


def is_deepmd_graph(graph_def: Any) -> bool:
    """Whether a ``GraphDef`` looks like a DeePMD-kit frozen model."""
    names = {node.name for node in graph_def.node}
    return all(m in names for m in MARKERS)


class _Constants:
    """Const nodes of a frozen graph by name, decoded lazily to NumPy."""

    def __init__(self, graph_def: Any, path: str) -> None:
        self.nodes = {node.name: node for node in graph_def.node if node.op == "Const"}
        self.path = path

    def __contains__(self, name: str) -> bool:
        return name in self.nodes

    def get(self, name: str, dtype: Any = None) -> np.ndarray:
        if name not in self.nodes:
            raise ModelFileError(f"{self.path}: DeePMD-kit graph has no constant {name!r}; "
                                 "is it an se_e2_r energy model frozen by DeePMD-kit 3.x?")
        value = tf.make_ndarray(self.nodes[name].attr["value"].tensor)
        return value if dtype is None else np.asarray(value, dtype=dtype)

    def text(self, name: str) -> str:
        value = self.get(name)
        return (value.item() if isinstance(value, np.ndarray) else value).decode()


def _refuse(path: str, what: str) -> None:
    raise ModelFileError(f"{path}: cannot import this DeePMD-kit model: {what}")


def import_graph_def(graph_def: Any, path: str = "<graph>") -> dict:
    """The serialized envelope of a DeePMD-kit se_e2_r energy ``.pb``."""
    consts = _Constants(graph_def, path)
    script = json.loads(consts.text("train_attr/training_script"))
    config = script.get("model", {})
    _check_supported(config, path)
    type_map = consts.text("model_attr/tmap").split() if "model_attr/tmap" in consts else list(config["type_map"])
    ntypes = len(type_map)
    tebd = config.get("type_embedding")
    descriptor = _descriptor(consts, config["descriptor"], type_map)
    type_embedding = None if tebd is None else _type_embedding(consts, tebd, ntypes, type_map)
    tebd_dim = 0 if type_embedding is None else type_embedding.dim_out
    fitting = _fitting(consts, config.get("fitting_net", {}), type_map, descriptor.dim_out + tebd_dim,
                       type_embedding is not None)
    model = modules.EnergyModel(descriptor, fitting, type_map, type_embedding=type_embedding)
    for name in ("out_bias", "out_std"):
        for node in (f"model_attr/model_attr/t_{name}", f"model_attr/t_{name}"):
            if node in consts:
                setattr(model, name, consts.get(node, np.float64).reshape(1, ntypes, -1)[:, :, :1])
                break
    data = {"backend": "TensorFlow", "tf_version": tf.__version__, "model": model.serialize(),
            "model_def_script": config}
    if "train_attr/min_nbor_dist" in consts:
        data["@variables"] = {"min_nbor_dist": consts.get("train_attr/min_nbor_dist")}
    return data


def _check_supported(config: dict, path: str) -> None:
    if "model_dict" in config:
        _refuse(path, "multi-task models are not supported")
    descriptor_type = config.get("descriptor", {}).get("type")
    if descriptor_type not in ("se_e2_r", "se_r"):
        _refuse(path, f"descriptor type {descriptor_type!r}; only se_e2_r is supported")
    fitting_type = config.get("fitting_net", {}).get("type", "ener")
    if fitting_type != "ener":
        _refuse(path, f"fitting type {fitting_type!r}; only energy models are supported")
    for key in ("use_srtab", "spin"):
        if config.get(key):
            _refuse(path, f"model/{key} is set")
    fitting = config.get("fitting_net", {})
    if any(e is not None for e in fitting.get("atom_ener") or []):
        _refuse(path, "model/fitting_net/atom_ener (vacuum energies) is not supported")
    if fitting.get("tot_ener_zero") or fitting.get("layer_name"):
        _refuse(path, "model/fitting_net tot_ener_zero / layer_name are not supported")


def _layer(consts: _Constants, scope: str, suffix: str, dtype: np.dtype, activation: str, resnet: bool,
           precision: str, trainable: bool, bias: bool = True) -> Layer:
    """One layer from ``{scope}/matrix{suffix}``, ``bias{suffix}``, ``idt{suffix}`` (absent idt = none)."""
    w = consts.get(f"{scope}/matrix{suffix}", dtype)
    b = consts.get(f"{scope}/bias{suffix}", dtype).reshape(-1) if bias else None
    idt_name = f"{scope}/idt{suffix}"
    skip = resnet and w.shape[1] in (w.shape[0], 2 * w.shape[0])
    idt = consts.get(idt_name, dtype).reshape(-1) if skip and idt_name in consts else None
    return Layer(w, b, idt, activation, resnet, precision, trainable)


def _embedding(consts: _Constants, scope: str, net_suffix: str, neuron: list[int], activation: str,
               resnet_dt: bool, precision: str, trainable: bool, in_dim: int = 1, bias: bool = True) -> EmbeddingNet:
    dtype = numpy_dtype(precision)
    layers = [_layer(consts, scope, f"_{k + 1}{net_suffix}", dtype, activation, True, precision, trainable, bias)
              for k in range(len(neuron))]
    return EmbeddingNet(in_dim, neuron, activation, resnet_dt, precision, bias=bias, layers=layers)


def _zeroed(net: EmbeddingNet) -> EmbeddingNet:
    for layer in net.layers:
        layer.w, layer.b = np.zeros_like(layer.w), None if layer.b is None else np.zeros_like(layer.b)
        layer.idt = None if layer.idt is None else np.zeros_like(layer.idt)
    return net


def _descriptor(consts: _Constants, config: dict, type_map: list[str]) -> modules.DescrptSeR:
    ntypes = len(type_map)
    precision = canonical_precision(config.get("precision", "default"))
    activation = canonical_activation(config.get("activation_function", "tanh"))
    keys = dict(rcut=config["rcut"], rcut_smth=config["rcut_smth"], sel=config["sel"],
                neuron=config.get("neuron", [10, 20, 40]), resnet_dt=config.get("resnet_dt", False),
                trainable=config.get("trainable", True), type_one_side=config.get("type_one_side", False),
                exclude_types=config.get("exclude_types", []), env_protection=config.get("env_protection", 0.0),
                set_davg_zero=config.get("set_davg_zero", False), activation_function=activation,
                precision=precision, type_map=type_map)
    descriptor = modules.DescrptSeR(**keys)
    neuron, one_side = descriptor.neuron, descriptor.type_one_side
    ndim = 1 if one_side else 2
    embeddings = NetworkCollection(ndim, ntypes, "embedding_network")
    for index in range(ntypes**ndim):
        ti, tj = (None, index) if one_side else (index % ntypes, index // ntypes)
        key = (tj,) if one_side else (ti, tj)
        scope = "filter_type_all" if one_side else f"filter_type_{ti}"
        excluded = not one_side and descriptor.is_excluded(ti, tj)
        if excluded:
            net = EmbeddingNet(1, neuron, activation, descriptor.resnet_dt, precision, trainable=descriptor.trainable)
            embeddings[key] = _zeroed(net)
        else:
            embeddings[key] = _embedding(consts, scope, f"_{tj}", neuron, activation, descriptor.resnet_dt,
                                         precision, descriptor.trainable)
    descriptor.embeddings = embeddings
    dtype = numpy_dtype(precision)
    shape = (ntypes, descriptor.nnei, 1)
    descriptor.davg = consts.get("descrpt_attr/t_avg", dtype).reshape(shape)
    descriptor.dstd = consts.get("descrpt_attr/t_std", dtype).reshape(shape)
    return descriptor


def _type_embedding(consts: _Constants, config: dict, ntypes: int, type_map: list[str]) -> modules.TypeEmbedNet:
    precision = canonical_precision(config.get("precision", "default"))
    activation = canonical_activation(config.get("activation_function", "tanh"))
    neuron = [int(n) for n in config.get("neuron", [8])]
    use_bias = bool(config.get("use_tebd_bias", False))
    trainable = bool(config.get("trainable", True))
    net = _embedding(consts, "type_embed_net", "", neuron, activation, bool(config.get("resnet_dt", False)),
                     precision, trainable, in_dim=ntypes, bias=use_bias)
    return modules.TypeEmbedNet(ntypes, neuron, bool(config.get("resnet_dt", False)), activation, precision,
                                trainable, padding=bool(config.get("padding", False)),
                                use_econf_tebd=bool(config.get("use_econf_tebd", False)), use_tebd_bias=use_bias,
                                type_map=type_map, embedding=net)


def _fitting(consts: _Constants, config: dict, type_map: list[str], dim_descrpt: int,
             mixed: bool) -> modules.EnergyFitting:
    ntypes = len(type_map)
    neuron = [int(n) for n in config.get("neuron", config.get("n_neuron", [120, 120, 120]))]
    precision = canonical_precision(config.get("precision", "default"))
    activation = canonical_activation(config.get("activation_function", "tanh"))
    trainable = config.get("trainable", True)
    flags = [bool(trainable)] * (len(neuron) + 1) if isinstance(trainable, bool) else [bool(t) for t in trainable]
    fitting = modules.EnergyFitting(
        ntypes, dim_descrpt, neuron, bool(config.get("resnet_dt", True)), int(config.get("numb_fparam", 0)),
        int(config.get("numb_aparam", 0)), rcond=config.get("rcond"), trainable=flags,
        atom_ener=list(config.get("atom_ener") or []), activation_function=activation, precision=precision,
        use_aparam_as_mask=bool(config.get("use_aparam_as_mask", False)), mixed_types=mixed, type_map=type_map,
        default_fparam=config.get("default_fparam"))
    dtype = numpy_dtype(precision)
    ndim = 0 if mixed else 1
    nets = NetworkCollection(ndim, ntypes, "fitting_network")
    for index in range(ntypes**ndim):
        suffix = "" if mixed else f"_type_{index}"
        layers = []
        for k in range(len(neuron)):
            # TF skips only between equal hidden widths (never at the input layer)
            width_in = fitting.input_dim if k == 0 else neuron[k - 1]
            dp_skip = neuron[k] in (width_in, 2 * width_in)
            tf_skip = k >= 1 and neuron[k] == neuron[k - 1]
            resnet = tf_skip or not dp_skip
            layers.append(_layer(consts, f"layer_{k}{suffix}", "", dtype, activation, resnet, precision, flags[k]))
        layers.append(_layer(consts, f"final_layer{suffix}", "", dtype, "none", False, precision, flags[-1]))
        nets[() if mixed else (index,)] = FittingNet(fitting.input_dim, 1, neuron, activation, fitting.resnet_dt,
                                                     precision, True, layers=layers)
    fitting.nets = nets
    fitting.bias_atom_e = consts.get("fitting_attr/t_bias_atom_e", np.float64).reshape(ntypes, 1)
    for kind in ("fparam", "aparam"):
        if getattr(fitting, f"numb_{kind}"):
            setattr(fitting, f"{kind}_avg", consts.get(f"fitting_attr/t_{kind}_avg", dtype).reshape(-1))
            setattr(fitting, f"{kind}_inv_std", consts.get(f"fitting_attr/t_{kind}_istd", dtype).reshape(-1))
    return fitting
