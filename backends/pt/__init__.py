"""PyTorch backend of the se_e2_r energy model (registered through the ``dpmodel.backends`` entry point)."""

from dpmodel.registry import BackendInfo

INFO = BackendInfo(
    name="pt",
    aliases=("pytorch", "torch"),
    suffixes=(".pth", ".pt"),
    requires=("torch",),
    io="backends.pt.io",
    train="backends.pt.train",
    title="PyTorch",
)
