"""TensorFlow backend of the se_e2_r energy model (registered through the ``dpmodel.backends`` entry point)."""

from dpmodel.registry import BackendInfo

INFO = BackendInfo(
    name="tf",
    aliases=("tensorflow", "tf2"),
    suffixes=(".savedmodel", ".pb"),
    requires=("tensorflow",),
    io="backends.tf.io",
    train="backends.tf.train",
    title="TensorFlow",
)
