"""Dense layers and nets of the TorchScript program inside a ``.pth`` file.

:class:`ScriptLayer` is dpmodel's ``Layer`` (``phi(x @ w + b) * idt + skip(x)``) and
:class:`ScriptNet` a stack of them, with every weight, activation and skip rule read from
the dpmodel object at build time; ``tests/pt/test_pt_scripted.py`` compares them with
dpmodel for every activation and skip kind.
"""

import numpy as np
import torch

from dpmodel.activation import canonical_activation

_ACTIVATIONS = ("none", "linear", "tanh", "relu", "relu6", "softplus", "sigmoid", "gelu", "gelu_tf", "silu")


@torch.jit.script
def _activation(x: torch.Tensor, code: int) -> torch.Tensor:
    if code == 2:
        return torch.tanh(x)
    if code == 3:
        return x * (x > 0.0).to(x.dtype)
    if code == 4:
        return torch.clamp(x, 0.0, 6.0)
    if code == 5:
        return torch.log1p(torch.exp(-torch.abs(x))) + torch.where(x > 0.0, x, torch.zeros_like(x))
    if code == 6:
        return 1.0 / (1.0 + torch.exp(-x))
    if code == 7 or code == 8:
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
    if code == 9:
        return x * (1.0 / (1.0 + torch.exp(-x)))
    return x


def tensor_of(array: np.ndarray | None, like: np.ndarray | None = None, fill: float = 0.0) -> torch.Tensor:
    if array is None:
        return torch.full(like.shape, fill, dtype=torch.from_numpy(like).dtype)
    return torch.from_numpy(np.array(array, copy=True))


class ScriptLayer(torch.nn.Module):
    """One dpmodel ``Layer``: ``phi(x @ w + b) * idt + skip(x)``.

    With ``features_first`` the layer maps (num_in, n) to (num_out, n), as
    ``phi(w^T x + b) * idt + skip(x)``: what the embedding nets use on their many slots,
    because a small weight times a wide block is 2-3 times faster in MKL than a tall
    block times a small weight (measured, float64, ``n`` = 12864, 10 -> 20).
    """

    activation: int
    skip: int
    has_idt: bool
    features_first: bool

    def __init__(self, layer, features_first: bool = False) -> None:
        super().__init__()
        self.features_first = features_first
        w, b, idt = tensor_of(layer.w), tensor_of(layer.b, layer.w[0]), tensor_of(layer.idt, layer.w[0], 1.0)
        if features_first:  # (num_out, num_in) weight, column vectors of bias and timestep
            w, b, idt = w.t().contiguous(), b[:, None].contiguous(), idt[:, None].contiguous()
        self.register_buffer("w", w)
        self.register_buffer("b", b)
        self.register_buffer("idt", idt)
        self.has_idt = layer.idt is not None
        self.activation = _ACTIVATIONS.index(canonical_activation(layer.activation_function))
        # the skip rule is dpmodel's: probe Layer.skip with a dummy input
        probe = layer.skip(np.zeros((1, layer.num_in)))
        self.skip = 0 if probe is None else (1 if probe.shape[-1] == layer.num_in else 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_skip(self.transform(x), x)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """``phi(x @ w + b) * idt``: the layer without its skip term."""
        return self.activate(self.linear(x))

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        """``x @ w + b`` (features first: ``w^T x + b``)."""
        if self.features_first:
            return self.w * x + self.b if self.w.shape[1] == 1 else torch.addmm(self.b, self.w, x)
        shape = list(x.shape[:-1])  # a list also in eager mode (the padding tables)
        shape.append(self.w.shape[1])
        if self.w.shape[0] == 1:  # input width 1: the outer product by broadcasting
            return x * self.w[0] + self.b
        return torch.addmm(self.b, x.reshape(-1, x.shape[-1]), self.w).reshape(shape)

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """``phi(z) * idt``; features first, ``z`` may have any trailing shape after its features."""
        y = _activation(z, self.activation)
        if self.has_idt:
            if self.features_first:
                shape = [self.idt.shape[0]] + [1] * (y.dim() - 1)
                y = y * self.idt.reshape(shape)
            else:
                y = y * self.idt
        return y

    def add_skip(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``y`` plus the skip term of input ``x`` (linear in ``x``)."""
        axis = 0 if self.features_first else -1
        if self.skip == 1:
            y = y + x
        elif self.skip == 2:
            y = y + torch.cat([x, x], dim=axis)
        return y


class ScriptNet(torch.nn.Module):
    """A dpmodel ``EmbeddingNet`` or ``FittingNet``: its layers in order."""

    def __init__(self, net, features_first: bool = False) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([ScriptLayer(layer, features_first) for layer in net.layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
