"""The sum of an embedding over the neighbour slots of each atom, and its pullback.

What :class:`dpmodel.descriptor.DescrptSeR` averages: a net evaluates every slot, a
table (:class:`dpmodel.table.TabulatedEmbedding`) sums without forming each slot's
value. The pullback maps the gradient with respect to the sum back to the slot inputs,
for dpmodel's analytic forces; autodiff backends differentiate the sum directly.
"""

from __future__ import annotations

from typing import Callable

from dpmodel.network import EmbeddingNet
from dpmodel.table import TabulatedEmbedding
from dpmodel.xp import Array, array_namespace, device

Pullback = Callable[[Array], Array]
"""Maps :math:`g = \\partial E/\\partial\\mathcal D` (nf, nloc, ng) to :math:`\\partial E/\\partial\\hat s`
of one type block's slots, (nf, nloc, width)."""


def sum_over_slots(net: EmbeddingNet | TabulatedEmbedding, block: Array, centre: Array | None,
                   need_grad: bool) -> tuple[Array, Pullback | None]:
    """:math:`\\sum_j \\mathcal G(\\hat s_{ij})` over the slots of ``block`` (nf, nloc, width), and its pullback.

    ``centre`` (nf, nloc, 1) or None multiplies each centre's sum (the centre-type mask of
    ``type_one_side=False``). A table sums without forming each slot's (ng,) value
    (:meth:`TabulatedEmbedding.sum_slots`); a net evaluates every slot.
    """
    xp = array_namespace(block)
    nf, nloc, width = block.shape
    if isinstance(net, TabulatedEmbedding):
        rows = xp.reshape(block, (nf * nloc, width))
        scale = None if centre is None else xp.reshape(centre, (nf * nloc, 1))
        value = xp.reshape(net.sum_slots(rows, scale), (nf, nloc, net.ng))

        def table_pullback(grad: Array) -> Array:
            flat = xp.reshape(grad if centre is None else grad * centre, (nf * nloc, net.ng))
            return xp.reshape(net.slot_slopes(rows, flat), (nf, nloc, width))

        return value, table_pullback if need_grad else None
    if not need_grad:
        value = net.call_summed(block)
        return (value if centre is None else value * centre), None
    value, slope = net.call_with_derivatives(block[..., None], 1)
    if centre is not None:
        value = value * centre[..., None]
        slope = slope * centre[..., None]
    return xp.sum(value, axis=2), lambda grad: xp.sum(slope * grad[:, :, None, :], axis=-1)


def sum_over_padding(nets: list[EmbeddingNet | TabulatedEmbedding | None], s_pad: Array, ng: int) -> Array:
    r"""Per centre type, the summed embedding of its padding slots: (ntypes, npad, 1) -> (ntypes, ng).

    ``nets[ti]`` embeds the padding of centre type ``ti`` (None: no net, zeros). Centre
    types that share one net (``type_one_side``) are evaluated in one call. A table skips
    its overflow check here: these values belong to the evaluation its slots are counted
    in, and lie in the table by construction (its lower bound is :math:`\lfloor -\mu/\sigma \rfloor`).
    """
    xp = array_namespace(s_pad)
    ntypes, npad = s_pad.shape[0], s_pad.shape[1]
    if nets and nets[0] is not None and all(net is nets[0] for net in nets):
        values = _values(nets[0], xp.reshape(s_pad, (ntypes * npad, 1)))
        return xp.sum(xp.reshape(values, (ntypes, npad, ng)), axis=1)
    rows = [xp.zeros((ng,), dtype=s_pad.dtype, device=device(s_pad)) if net is None
            else xp.sum(_values(net, s_pad[ti, ...]), axis=0) for ti, net in enumerate(nets)]
    return xp.stack(rows, axis=0)


def _values(net: EmbeddingNet | TabulatedEmbedding, x: Array) -> Array:
    """``net`` on inputs (n, 1) -> (n, ng); a table without its overflow check."""
    if isinstance(net, TabulatedEmbedding):
        return net.call_with_derivatives(x, 0, check=False)[0]
    return net.call(x)


def summed(pullbacks: list[Pullback]) -> Pullback:
    """The pullback of a sum of contributions."""
    def pullback(grad: Array) -> Array:
        out = pullbacks[0](grad)
        for other in pullbacks[1:]:
            out = out + other(grad)
        return out
    return pullback


def scaled(pullback: Pullback, scale: float) -> Pullback:
    """``pullback`` of the descriptor times ``scale``."""
    return lambda grad: pullback(grad * scale)
