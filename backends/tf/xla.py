"""XLA compilation of the lower interface for the input shapes that recur.

A ``tf.function`` graph runs op by op in TensorFlow's executor; compiled by XLA
(``jit_compile=True``) its element-wise chains fuse, which made the energy, forces and
virial of 192-atom water about 1.6x faster on a 2-core CPU. XLA compiles once per
concrete input shape (seconds), so :class:`HotShapes` runs the plain graph for a shape's
first ``hot_after - 1`` calls and the compiled one from then on: molecular dynamics and
long evaluations (one system size, the same shapes every step) get the compiled program,
one-off shapes (the last, shorter batch of ``dp test``) never pay for a compilation.
The training step (:mod:`backends.tf.train`) compiles from a shape's first step
(``hot_after=1``), so that a restarted run repeats the arithmetic of the original.

``DP_TF_XLA=0`` turns it off. If XLA cannot compile a graph the plain one runs from then
on, with one warning.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any, Callable, Sequence

import tensorflow as tf

_LOG = logging.getLogger(__name__)

HOT_AFTER = 2  # calls of one input shape before it is compiled


def enabled() -> bool:
    """Whether XLA compilation is on (``DP_TF_XLA`` unset or not ``0``)."""
    return os.environ.get("DP_TF_XLA", "1").strip() != "0"


class HotShapes:
    """``function(*tensors)``, compiled by XLA for input shapes seen ``hot_after`` times.

    Parameters
    ----------
    function : the graph function (a ``tf.function``, a concrete or a wrapped function)
    signature : its input specs (``None`` dimensions allowed)
    hot_after : calls of a shape before the compiled function takes over
    """

    def __init__(self, function: Callable[..., Any], signature: Sequence[tf.TensorSpec],
                 hot_after: int = HOT_AFTER) -> None:
        self.function = function
        self.hot_after = hot_after
        self.calls: Counter[tuple] = Counter()
        self.compiled_calls = 0
        self.broken = not enabled()
        self.compiled = tf.function(lambda *args: function(*args), input_signature=list(signature),
                                    autograph=False, jit_compile=True)
        # its one concrete function (the signature fixes it), called directly: the polymorphic
        # dispatch of a tf.function call costs about 0.3 ms, 3 % of a 192-atom water frame
        self._concrete: Any = None

    def __call__(self, *args: tf.Tensor) -> Any:
        key = tuple(tuple(a.shape) for a in args)
        self.calls[key] += 1
        if self.broken or self.calls[key] < self.hot_after:
            return self.function(*args)
        try:
            if self._concrete is None:
                self._concrete = self.compiled.get_concrete_function()
            out = self._concrete(*args)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, tf.errors.InternalError) as err:
            _LOG.warning("XLA could not compile this graph (%s); running it without XLA", str(err).splitlines()[0])
            self.broken = True
            return self.function(*args)
        self.compiled_calls += 1
        return out
