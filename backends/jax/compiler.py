"""``jax.jit`` with this backend's XLA options, for model evaluations and the training step.

XLA on the CPU (jaxlib 0.10) hands dot products, reductions and element-wise chains to
YNNPACK fusions by default. Two of those choices cost time here:

- A YNNPACK reduction whose input is a gather takes the gather as a kernel of its own, so
  the gathered block is written to memory first and read back. The compressed table
  sums of :mod:`backends.jax.row_sum` are exactly that: a gather of table rows,
  multiplied and summed. Left to XLA, the gather fuses into the reduction: one chunked
  row sum over 552 columns of a table with 8160 rows took 1.3 instead of 6.2 ms.
- The embedding nets multiply (pairs, 5..100) activations by small weight matrices, and
  the training step differentiates them twice. YNNPACK fused with the element-wise work
  around them ran slower than each product as a library call of its own.

:data:`COMPILER_OPTIONS` therefore keeps YNNPACK for individual dot products only.
Measured on 192-atom water, 2 CPU cores, against XLA's defaults: energy, forces and
virial of a compressed ``[25, 50, 100]`` model 8.2 instead of 17 ms and of the plain one
34 instead of 42 ms (compiled program alone); a training step of the ``[5, 10, 20]``
water example 14.6 instead of 22 ms. :func:`backends.jax.model.energy_fn` keeps plain
``jax.jit``: it runs inside the caller's ``jax.jit``, and JAX takes compiler options only
on the outermost one.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

#: XLA debug options of :func:`jit`: YNNPACK for each dot product alone, no reductions or element-wise fusions
COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def jit(fun: Callable[..., Any], **kwargs: Any) -> Any:
    """``jax.jit(fun, **kwargs)`` compiled with :data:`COMPILER_OPTIONS`."""
    return jax.jit(fun, compiler_options=COMPILER_OPTIONS, **kwargs)
