"""JAX backend of the se_e2_r energy model (registered through the ``dpmodel.backends`` entry point).

Modules: ``modules`` (dpmodel classes holding ``jax.numpy`` arrays, the parameter
pytree), ``model`` (forces and virials by ``jax.grad`` under ``jax.jit``, the jax-md
style ``energy_fn``), ``io`` (``.jax`` and ``.hlo`` files, ``Evaluator``), ``train``
(the training step, Adam from optax). Importing this package imports no framework.

Global state: the backend never sets ``jax_enable_x64``; its entry points run under
the scoped ``jax.enable_x64(True)`` (``backends.jax.modules.x64``). Importing
``backends.jax.modules`` registers, once, ``jax.ops.segment_sum`` with
``dpmodel.xp.register_segment_sum``, the chunked table sum of ``row_sum`` with
``dpmodel.xp.register_weighted_row_sum`` and a ``jax.debug.callback`` overflow reporter
with ``dpmodel.table.register_overflow_reporter``, all keyed on the ``jax.numpy`` namespace.
"""

from dpmodel.registry import BackendInfo

INFO = BackendInfo(
    name="jax",
    aliases=("jax",),
    suffixes=(".jax", ".hlo"),
    requires=("jax", "optax"),
    io="backends.jax.io",
    train="backends.jax.train",
    title="JAX",
)
