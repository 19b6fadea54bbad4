"""Exported TensorFlow graphs: SavedModel and frozen GraphDef of the lower interface.

Tensor names are listed in :mod:`backends.tf.io`; the inputs and outputs are those of
:mod:`backends.tf.model`. Each ``*_functions`` helper returns two callables on NumPy
inputs (the dict of :func:`backends.tf.model.prepare_inputs`): the lower interface and
the descriptor.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from backends.tf.model import INPUT_NAMES, OUTPUT_NAMES, CompiledModel, descriptor_of, energy_and_forces, signature_of
from backends.tf.modules import EnergyModel
from backends.tf.xla import HotShapes

Functions = tuple[Callable[[dict], dict], Callable[[dict], np.ndarray]]


def _feed(inputs: dict, names: tuple[str, ...]) -> list[tf.Tensor]:
    return [tf.convert_to_tensor(inputs[n]) for n in names]


def _numpy(out: dict) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in out.items()}


# ------------------------------------------------------------------ frozen GraphDef
def frozen_graph_def(model: EnergyModel, payload: bytes, payload_node: str) -> tf.compat.v1.GraphDef:
    """A self-contained ``GraphDef``: placeholders ``i_*``, outputs ``o_*`` and the payload constant."""
    signature = [tf.TensorSpec(s.shape, s.dtype, name=f"i_{s.name}") for s in signature_of(model)]

    def lower(coord_ext, atype_ext, nlist, mapping, fparam, aparam):
        out = energy_and_forces(model, coord_ext, atype_ext, nlist, mapping, fparam, aparam)
        out["descriptor"] = descriptor_of(model, coord_ext, atype_ext, nlist)
        return {k: tf.identity(v, name=f"o_{k}") for k, v in out.items()}

    concrete = tf.function(lower, input_signature=signature, autograph=False).get_concrete_function()
    graph_def = _freeze(concrete)
    node = graph_def.node.add()
    node.name, node.op = payload_node, "Const"
    node.attr["dtype"].type = tf.string.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(payload))
    return graph_def


def _freeze(concrete) -> tf.compat.v1.GraphDef:
    """The graph of ``concrete`` with every captured variable read replaced by a constant.

    A direct rewrite of the ``GraphDef`` (``ReadVariableOp`` of a captured handle becomes
    ``Const``); graphs it does not cover go through ``convert_variables_to_constants_v2``.
    """
    graph_def = concrete.graph.as_graph_def()
    variables = {id(v.handle): v for v in concrete.variables}
    values = {internal.op.name: variables.get(id(external)) for external, internal in concrete.graph.captures}
    if graph_def.library.function or any(v is None for v in values.values()):
        return convert_variables_to_constants_v2(concrete).graph.as_graph_def()
    frozen = tf.compat.v1.GraphDef()
    frozen.versions.CopyFrom(graph_def.versions)
    for node in graph_def.node:
        if node.name in values:
            continue
        inputs = [i.split(":")[0].lstrip("^") for i in node.input]
        if node.op == "ReadVariableOp" and inputs[0] in values:
            const = frozen.node.add()
            const.name, const.op = node.name, "Const"
            value = values[inputs[0]].numpy()
            const.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
            const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            continue
        if any(i in values for i in inputs):  # another use of a variable handle
            return convert_variables_to_constants_v2(concrete).graph.as_graph_def()
        frozen.node.add().CopyFrom(node)
    return frozen


def frozen_functions(graph_def: tf.compat.v1.GraphDef) -> Functions:
    """Functions of a frozen graph of ours: ``import_graph_def`` inside ``wrap_function`` (no session)."""
    specs = [tf.TensorSpec(None, tf.float64 if n in ("coord_ext", "fparam", "aparam") else tf.int64, name=n)
             for n in INPUT_NAMES]

    def importer(names: tuple[str, ...], fetches: list[str]):
        def imported(*inputs):
            mapped = {f"i_{n}:0": t for n, t in zip(names, inputs)}
            return tf.compat.v1.import_graph_def(graph_def, input_map=mapped, return_elements=fetches, name="")
        return tf.compat.v1.wrap_function(imported, specs[: len(names)])

    lower = HotShapes(importer(INPUT_NAMES, [f"o_{k}:0" for k in OUTPUT_NAMES]), specs)
    descriptor = []  # imported on first use

    def run_descriptor(inputs: dict) -> np.ndarray:
        if not descriptor:
            descriptor.append(importer(INPUT_NAMES[:3], ["o_descriptor:0"]))
        return descriptor[0](*_feed(inputs, INPUT_NAMES[:3]))[0].numpy()

    def run_lower(inputs: dict) -> dict:
        return dict(zip(OUTPUT_NAMES, (t.numpy() for t in lower(*_feed(inputs, INPUT_NAMES)))))

    run_lower.xla = lower
    return run_lower, run_descriptor


# ------------------------------------------------------------------ SavedModel
def write_savedmodel(directory: str, model: EnergyModel, payload: bytes, asset_name: str) -> None:
    """Export ``model`` to ``directory`` with the payload as the asset ``asset_name``."""
    compiled = CompiledModel(model)
    with tempfile.TemporaryDirectory() as staging:
        asset = Path(staging) / asset_name
        asset.write_bytes(payload)
        module = tf.Module()
        module.model = model
        module.model_dict = tf.saved_model.Asset(str(asset))
        signatures = {"serving_default": compiled.call_lower.get_concrete_function(),
                      "descriptor": _named(compiled.descriptor_lower)}
        tf.saved_model.save(module, directory, signatures=signatures)
    if not os.path.isfile(os.path.join(directory, "assets", asset_name)):
        raise OSError(f"SavedModel export did not write the {asset_name} asset")


def _named(function) -> tf.types.experimental.ConcreteFunction:
    """A concrete function returning ``{"descriptor": ...}`` (signature outputs need names)."""
    specs = function.input_signature
    return tf.function(lambda *args: {"descriptor": function(*args)}, input_signature=specs, autograph=False).get_concrete_function()


def savedmodel_functions(path: str | Path) -> Functions:
    """The two signatures of a SavedModel of ours."""
    loaded = tf.saved_model.load(str(path))
    signature, descriptor = loaded.signatures["serving_default"], loaded.signatures["descriptor"]
    specs = signature.structured_input_signature[1]
    lower = HotShapes(lambda *tensors: signature(**dict(zip(INPUT_NAMES, tensors))), [specs[n] for n in INPUT_NAMES])

    def run_lower(inputs: dict) -> dict:
        return _numpy(lower(*_feed(inputs, INPUT_NAMES)))

    def run_descriptor(inputs: dict) -> np.ndarray:
        return descriptor(**{n: tf.convert_to_tensor(inputs[n]) for n in INPUT_NAMES[:3]})["descriptor"].numpy()

    run_lower.loaded = loaded  # keep the restored objects alive
    run_lower.xla = lower
    return run_lower, run_descriptor


def model_functions(model_dict: dict, eager: bool = False) -> Functions:
    """Functions of a model built from its dict: ``tf.function`` objects, or plain eager calls."""
    from backends.tf.modules import model_from_dict

    model = model_from_dict(model_dict)
    if eager:
        def lower(*inputs):
            return energy_and_forces(model, *inputs)

        def descriptor(*inputs):
            return descriptor_of(model, *inputs)
    else:
        compiled = CompiledModel(model)
        lower, descriptor = HotShapes(compiled.call_lower, signature_of(model)), compiled.descriptor_lower

    def run_lower(inputs: dict) -> dict:
        return _numpy(lower(*_feed(inputs, INPUT_NAMES)))

    run_lower.xla = lower if isinstance(lower, HotShapes) else None
    return run_lower, lambda inputs: descriptor(*_feed(inputs, INPUT_NAMES[:3])).numpy()
