"""dpmodel's classes as ``torch.nn.Module`` objects: the math is dpmodel's, run on torch tensors.

Each wrapper is a dpmodel class plus :class:`TorchModule`. Arrays that dpmodel code
assigns become ``nn.Parameter`` objects (layer ``w``, ``b``, ``idt``; ``requires_grad`` follows
the layer's ``trainable``) or buffers (``davg``, ``dstd``, ``bias_atom_e``, ``out_bias``,
...); dpmodel sub-objects become their wrappers, lists of them ``nn.ModuleList`` objects.
``serialize()`` goes back through a NumPy dpmodel copy, so it is bit-exact.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import torch

from backends.pt import threads
from dpmodel import descriptor as dp_descriptor
from dpmodel import fitting as dp_fitting
from dpmodel import model as dp_model
from dpmodel import network as dp_network
from dpmodel import xp as dpxp

threads.configure()
# nets summed over many slots run features first: MKL's small-weight-times-wide-block product is the faster one
dpxp.register_features_first(array_api_compat.is_torch_namespace)

_WRAPPERS: dict[type, type] = {}
_MODULE_INTERNALS = frozenset(vars(torch.nn.Module()))


class ModuleList(torch.nn.ModuleList):
    """``nn.ModuleList`` that accepts ``None`` slots and wraps dpmodel objects stored in it."""

    def __setitem__(self, idx: int, module: Any) -> None:
        key = self._get_abs_string_index(idx)
        self._modules[key] = to_torch(module)


class TorchModule(torch.nn.Module):
    """Framework glue of every wrapper: converts what dpmodel code assigns to ``self``.

    Class attributes
    ----------------
    parameter_names : attributes holding trainable arrays (others become buffers).
    module_lists : attributes holding lists of sub-objects (become :class:`ModuleList`).
    """

    parameter_names: frozenset = frozenset()
    module_lists: frozenset = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _MODULE_INTERNALS or name.startswith("_"):
            super().__setattr__(name, value)
            return
        value = self._convert(name, value)
        if isinstance(value, torch.Tensor):
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
            self.__dict__.pop(name, None)
            if isinstance(value, torch.nn.Parameter):
                self.register_parameter(name, value)
            else:
                self.register_buffer(name, value)
            return
        if value is None:
            # a None parameter/buffer stays a plain attribute, so it can become an array later
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
        if name == "trainable" and isinstance(value, bool):
            for param in self._parameters.values():
                if param is not None:
                    param.requires_grad_(value)
        super().__setattr__(name, value)

    def _convert(self, name: str, value: Any) -> Any:
        if isinstance(value, (np.ndarray, torch.Tensor)) and not isinstance(value, torch.nn.Parameter):
            tensor = torch.from_numpy(np.array(value, copy=True)) if isinstance(value, np.ndarray) else value
            if name in self.parameter_names:
                trainable = self.__dict__.get("trainable", True)
                return torch.nn.Parameter(tensor, requires_grad=bool(trainable) if isinstance(trainable, bool) else True)
            return tensor
        if name in self.module_lists and isinstance(value, (list, tuple)):
            return ModuleList([to_torch(v) for v in value])
        return to_torch(value)

    def to_dpmodel(self) -> Any:
        """A NumPy dpmodel copy of this object (parameters copied to the host)."""
        dp_cls = next(c for c in type(self).__mro__ if c in _WRAPPERS)
        obj = dp_cls.__new__(dp_cls)
        for key, value in vars(self).items():
            if key not in _MODULE_INTERNALS:
                obj.__dict__[key] = value
        for key, value in [*self._parameters.items(), *self._buffers.items()]:
            obj.__dict__[key] = None if value is None else value.detach().cpu().numpy().copy()
        for key, value in self._modules.items():
            obj.__dict__[key] = _to_dpmodel(value)
        return obj

    def serialize(self) -> dict:
        """dpmodel's ``serialize()`` of :meth:`to_dpmodel` (bit-exact)."""
        return self.to_dpmodel().serialize()


def _to_dpmodel(value: Any) -> Any:
    if isinstance(value, torch.nn.ModuleList):
        return [_to_dpmodel(v) for v in value]
    if isinstance(value, TorchModule):
        return value.to_dpmodel()
    return value


def to_torch(value: Any) -> Any:
    """The torch wrapper of a dpmodel object (other values are returned unchanged)."""
    cls = _WRAPPERS.get(type(value))
    if cls is None:
        return value
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    for key, item in vars(value).items():
        setattr(module, key, item)
    return module


def _wrap(dp_cls: type, parameter_names: tuple[str, ...] = (), module_lists: tuple[str, ...] = (),
          **extra: Any) -> type:
    """Define ``class <Name>(dp_cls, TorchModule)`` and register it as the wrapper of ``dp_cls``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        torch.nn.Module.__init__(self)
        dp_cls.__init__(self, *args, **kwargs)

    namespace = {
        "__init__": __init__,
        "__doc__": f"Runs dpmodel ``{dp_cls.__name__}`` as a ``torch.nn.Module``.",
        "__module__": __name__,
        "__hash__": object.__hash__,  # dataclass ``Layer`` sets __hash__ = None
        "__eq__": object.__eq__,
        "__repr__": torch.nn.Module.__repr__,
        "serialize": TorchModule.serialize,
        "parameter_names": frozenset(parameter_names),
        "module_lists": frozenset(module_lists),
        **extra,
    }
    cls = type(dp_cls.__name__, (dp_cls, TorchModule), namespace)
    _WRAPPERS[dp_cls] = cls
    return cls


Layer = _wrap(dp_network.Layer, parameter_names=("w", "b", "idt"))
EmbeddingNet = _wrap(dp_network.EmbeddingNet, module_lists=("layers",))
FittingNet = _wrap(dp_network.FittingNet, module_lists=("layers",))
NetworkCollection = _wrap(dp_network.NetworkCollection, module_lists=("networks",))
DescrptSeR = _wrap(dp_descriptor.DescrptSeR, backend="pt")
EnergyFitting = _wrap(dp_fitting.EnergyFitting)


def _model_forward(self, coord: torch.Tensor, atype: torch.Tensor, box: torch.Tensor | None = None,
                   fparam: torch.Tensor | None = None, aparam: torch.Tensor | None = None,
                   do_atomic_virial: bool = False) -> dict[str, torch.Tensor]:
    """Energy, forces and virials by autograd; see :func:`backends.pt.model.evaluate`."""
    from backends.pt.model import evaluate

    return evaluate(self, coord, atype, box, fparam, aparam, do_atomic_virial, create_graph=self.training)


EnergyModel = _wrap(dp_model.EnergyModel, descriptor_class=DescrptSeR, fitting_class=EnergyFitting,
                    forward=_model_forward)


def model_from_dict(data: dict) -> Any:
    """A torch :class:`EnergyModel` from a serialized model dict (checks as :mod:`dpmodel.model_factory`)."""
    from dpmodel.model_factory import model_from_dict as build

    return build(data, EnergyModel)
