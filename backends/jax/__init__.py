"""JAX backend of the se_e2_r energy model (registered through the ``dpmodel.backends`` entry point)."""

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
