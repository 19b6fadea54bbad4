"""``jax.jit`` with this backend's XLA options, for the compiled evaluations of a model file.

XLA on the CPU (jaxlib 0.10) hands reductions to YNNPACK fusions. Such a fusion takes
a reduction whose input is a gather as a kernel of its own, so the gathered block is
written to memory first and read back. The compressed table sums of
:mod:`backends.jax.row_sum` are exactly that: a gather of table rows, multiplied and
summed. Kept for dot products only (:data:`COMPILER_OPTIONS`), YNNPACK leaves the
reduction to XLA, which fuses the gather into it. Measured on 192-atom water with
``[25, 50, 100]`` embedding nets, on 2 CPU cores: one chunked row sum over 552 columns
of a table with 8160 rows took 1.3 instead of 6.2 ms, and energy, forces and virial of
the compressed model 22 instead of 29 ms; the plain model's time did not change.

The training step keeps XLA's defaults (it sums no tables), and so does
:func:`backends.jax.model.energy_fn`: it runs inside the caller's ``jax.jit``, and JAX takes
compiler options only on the outermost one.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

#: XLA debug options of :func:`jit`: YNNPACK fusions for dot products only, no reductions
COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


def jit(fun: Callable[..., Any], **kwargs: Any) -> Any:
    """``jax.jit(fun, **kwargs)`` compiled with :data:`COMPILER_OPTIONS`."""
    return jax.jit(fun, compiler_options=COMPILER_OPTIONS, **kwargs)
