r"""Adam, the one update formula every backend's training step follows.

For a parameter :math:`\theta` with gradient :math:`g` at update number :math:`t`
(1 for the first update), learning rate :math:`\gamma`:

.. math::
    m \leftarrow \beta_1 m + (1-\beta_1)\,g,\qquad
    v \leftarrow \beta_2 v + (1-\beta_2)\,g^2,\\
    \theta \leftarrow \theta - \gamma\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon},

with :math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`, :math:`\epsilon = 10^{-8}`, the
defaults of DeePMD-kit's PyTorch trainer (``torch.optim.Adam``; ``optax.adam`` is the
same formula). TensorFlow's Keras ``Adam`` places :math:`\epsilon` differently
(:math:`\epsilon\sqrt{1-\beta_2^t}`), so a backend must not use it where loss curves
are to agree across backends. With ``training/gradient_max_norm`` = :math:`c`, the
gradients are first scaled by :math:`\min(1, c/\lVert g\rVert_2)`, the norm taken over
all parameters together (``torch.nn.utils.clip_grad_norm_``).

:func:`adam_update` is the array-API reference that backends may call directly.
"""

from __future__ import annotations

from dpmodel.xp import Array, array_namespace

__all__ = ["BETA1", "BETA2", "EPSILON", "adam_update", "clip_scale"]

BETA1 = 0.9
BETA2 = 0.999
EPSILON = 1e-8


def adam_update(param: Array, grad: Array, m: Array, v: Array, t: int, lr: float,
                beta1: float = BETA1, beta2: float = BETA2, eps: float = EPSILON) -> tuple[Array, Array, Array]:
    """One Adam update (module docstring).

    Parameters
    ----------
    param, grad, m, v : Array, same shape and namespace
        Parameter, its gradient, first and second moments.
    t : int or 0-d Array
        Update number, starting at 1.
    lr : float or 0-d Array
        Learning rate :math:`\\gamma`.

    Returns
    -------
    tuple of Array
        Updated ``(param, m, v)``.
    """
    xp = array_namespace(param, grad)
    m = beta1 * m + (1.0 - beta1) * grad
    v = beta2 * v + (1.0 - beta2) * grad * grad
    m_hat = m / (1.0 - beta1**t)
    v_hat = v / (1.0 - beta2**t)
    return param - lr * m_hat / (xp.sqrt(v_hat) + eps), m, v


def clip_scale(grads: list[Array], max_norm: float | None) -> Array | float:
    """Factor :math:`\\min(1, c/\\lVert g\\rVert_2)` for global-norm clipping (1.0 without ``max_norm``)."""
    if max_norm is None:
        return 1.0
    xp = array_namespace(*grads)
    total = xp.sqrt(sum(xp.sum(g * g) for g in grads))
    return xp.minimum(xp.ones_like(total), max_norm / (total + 1e-6))
