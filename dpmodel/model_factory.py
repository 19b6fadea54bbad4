"""Build dpmodel objects from serialized dicts (the one place that dispatches on ``@class``)."""

from __future__ import annotations

from dpmodel.errors import ModelFileError
from dpmodel.model import EnergyModel


def model_from_dict(data: dict, model_class: type = EnergyModel) -> EnergyModel:
    """An energy model from a DeePMD-kit v3 model dict, with clear errors for other kinds."""
    if not isinstance(data, dict) or data.get("@class") != "Model":
        found = data.get("@class") if isinstance(data, dict) else type(data).__name__
        raise ModelFileError(f"expected a serialized model (@class 'Model'), found {found!r}")
    fitting_type = data.get("fitting", {}).get("type")
    if fitting_type != "ener":
        raise ModelFileError(f"only energy models (fitting type 'ener') are supported; found fitting type {fitting_type!r}")
    descriptor_type = data.get("descriptor", {}).get("type")
    if descriptor_type not in ("se_r", "se_e2_r"):
        raise ModelFileError(f"only the se_e2_r descriptor is supported; found descriptor type {descriptor_type!r}")
    if data.get("type_embedding") is not None:
        from dpmodel.capabilities import check_supported

        check_supported("model/type_embedding", data["type_embedding"], model_class.descriptor_class.backend)
    return model_class.deserialize(data)
