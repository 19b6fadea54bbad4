"""Adam on parameters that share one buffer: a few element-wise operations per update.

A model's trainable parameters are many small tensors (32 for the water model, 64k values
in all), so an update written per tensor, or with ``torch._foreach_*`` over the list, spends
most of its time dispatching operations. :func:`flatten` re-homes the parameters of one
dtype and device as views of one buffer, and their gradients as views of a second one;
autograd then accumulates every gradient in place into that buffer (it adds into an
existing ``.grad`` instead of replacing it). :meth:`FlatGroup.adam` updates all of them
with :func:`adam_in_place`, about ten operations on the whole buffer.

The parameters stay the same ``nn.Parameter`` objects with the same shapes, so the
module, ``state_dict`` and serialization see no difference; data-parallel training
sums the gradient buffers across processes and broadcasts the parameter buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class FlatGroup:
    """Parameters of one dtype and device stored in one buffer.

    Attributes
    ----------
    shapes : parameter shapes by name, in buffer order
    values, grads, m, v : shape (n,); parameters, their gradients, Adam's first and second moments
    """

    shapes: dict[str, torch.Size]
    values: torch.Tensor
    grads: torch.Tensor
    m: torch.Tensor
    v: torch.Tensor
    grad_views: dict[str, torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.grad_views = self.views(self.grads)  # the parameters' ``.grad``

    def views(self, buffer: torch.Tensor) -> dict[str, torch.Tensor]:
        """``buffer`` (one of this group's) cut into one view per parameter, by name."""
        out, start = {}, 0
        for name, shape in self.shapes.items():
            stop = start + shape.numel()
            out[name] = buffer[start:stop].view(shape)
            start = stop
        return out

    def zero_grads(self, params: dict[str, torch.nn.Parameter]) -> None:
        """Zero the gradient buffer and make it every parameter's ``.grad`` again, in case
        something set a ``.grad`` to None or to a new tensor since (``zero_grad()`` does)."""
        self.grads.zero_()
        for name, view in self.grad_views.items():
            if params[name].grad is not view:
                params[name].grad = view

    def adam(self, t: int, lr: float, beta1: float, beta2: float, eps: float, scale: float | torch.Tensor = 1.0) -> None:
        """One Adam update (:func:`adam_in_place`) of the whole group with its gradients times ``scale``."""
        grads = self.grads if isinstance(scale, float) and scale == 1.0 else self.grads * scale
        adam_in_place(self.values, grads, self.m, self.v, t, lr, beta1, beta2, eps)


def flatten(params: dict[str, torch.nn.Parameter]) -> list[FlatGroup]:
    """Move ``params`` into one buffer per (dtype, device); gradients into a zeroed second buffer.

    Every parameter keeps its identity and values; its ``.data`` becomes a view of
    ``FlatGroup.values`` and its ``.grad`` a view of ``FlatGroup.grads``.
    """
    kinds: dict[tuple[torch.dtype, torch.device], list[str]] = {}
    for name, param in params.items():
        kinds.setdefault((param.dtype, param.device), []).append(name)
    groups = []
    for names in kinds.values():
        values = torch.cat([params[name].detach().reshape(-1) for name in names])
        group = FlatGroup({name: params[name].shape for name in names}, values, torch.zeros_like(values),
                          torch.zeros_like(values), torch.zeros_like(values))
        with torch.no_grad():
            for name, view in group.views(values).items():
                params[name].data = view
        group.zero_grads(params)
        groups.append(group)
    return groups


def adam_in_place(param: torch.Tensor, grad: torch.Tensor, m: torch.Tensor, v: torch.Tensor, t: int, lr: float,
                  beta1: float, beta2: float, eps: float) -> None:
    """:func:`dpmodel.training.adam.adam_update` of ``param``, ``m`` and ``v`` in place.

    The same operations in the same order as the reference, so the same numbers bit for bit
    (``tests/pt/test_pt_train.py``); ``grad`` is not changed.
    """
    m.mul_(beta1).add_(grad * (1.0 - beta1))
    v.mul_(beta2).add_(grad * (1.0 - beta2) * grad)
    step = (m / (1.0 - beta1**t)).mul_(lr)
    denominator = (v / (1.0 - beta2**t)).sqrt_().add_(eps)
    param.sub_(step.div_(denominator))
