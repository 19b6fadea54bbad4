"""Which backend supports which option: the one source of refusals, test skips and docs.

Every refusal raised anywhere in the project comes from :func:`check_supported`, so the
message, the consistency-suite expectations and the documentation table agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dpmodel.errors import UnsupportedOptionError

BACKENDS = ("dpmodel", "pt", "jax", "tf")
BACKEND_NAMES = {"dpmodel": "dpmodel (NumPy / array API)", "pt": "PyTorch", "jax": "JAX", "tf": "TensorFlow"}
BACKEND_FLAGS = {"dpmodel": "dpmodel", "pt": "--pt", "jax": "--jax", "tf": "--tf"}


@dataclass(frozen=True)
class Restriction:
    """An option value that only some backends implement.

    Attributes
    ----------
    option : key path in input.json / the serialized model, e.g. ``model/descriptor/type_one_side``.
    refused : predicate on the option's value; true where the value needs support.
    value_text : how the refused value is described to the user.
    supported_by : backends that implement it.
    fix : what the user can change instead.
    """

    option: str
    refused: Callable[[Any], bool]
    value_text: str
    supported_by: tuple[str, ...]
    fix: str


RESTRICTIONS: tuple[Restriction, ...] = (
    Restriction("model/descriptor/type_one_side", lambda v: v is False, "false", ("tf",),
                "set it to true (one embedding net per neighbour type)"),
    Restriction("model/descriptor/env_protection", lambda v: float(v) != 0.0, "!= 0", ("dpmodel", "pt", "jax"),
                "set it to 0.0"),
    Restriction("model/type_embedding", lambda v: v is not None, "set", ("tf",),
                "remove the model-level type_embedding section"),
    Restriction("model/descriptor/spin", lambda v: v is not None, "set", (),
                "remove spin; spin models are not part of se_e2_r here"),
    Restriction("dp compress: model/type_embedding", bool, "set", (),
                "a model-level (TensorFlow) type embedding has no tabulated form for se_e2_r; "
                "use the uncompressed model"),
)

_BY_OPTION = {r.option: r for r in RESTRICTIONS}

#: Options whose value, when the input leaves them out, depends on the backend
#: (``"*"``: every other backend). ``type_one_side`` defaults to false in DeePMD-kit's
#: schema, which only TensorFlow implements; DeePMD-kit's PyTorch backend effectively
#: runs one-side nets, so pt/jax/dpmodel default to true.
BACKEND_DEFAULTS: dict[str, dict[str, Any]] = {
    "model/descriptor/type_one_side": {"tf": False, "*": True},
}


def backend_default(option: str, backend: str) -> Any:
    """The value ``option`` takes on ``backend`` when the input does not set it."""
    table = BACKEND_DEFAULTS[option]
    return table.get(backend, table["*"])


def is_supported(option: str, value: Any, backend: str) -> bool:
    """Whether ``backend`` implements ``option = value``."""
    restriction = _BY_OPTION.get(option)
    return restriction is None or not restriction.refused(value) or backend in restriction.supported_by


def check_supported(option: str, value: Any, backend: str) -> None:
    """Raise :class:`UnsupportedOptionError` if ``backend`` cannot run ``option = value``.

    The message names the option, the value, the backend and the backends that do
    support it, and the fix.
    """
    if is_supported(option, value, backend):
        return
    restriction = _BY_OPTION[option]
    supporters = ", ".join(BACKEND_NAMES[b] for b in restriction.supported_by) or "no backend"
    hint = ""
    if restriction.supported_by:
        flags = " or ".join(BACKEND_FLAGS[b] for b in restriction.supported_by)
        hint = f", or use {flags}"
    raise UnsupportedOptionError(
        f"{option} = {restriction.value_text} ({_brief(value)}) is not supported by backend "
        f"{BACKEND_NAMES[backend]!r} (supported by: {supporters}); {restriction.fix}{hint}"
    )


def model_options(model: dict) -> dict[str, Any]:
    """The restricted options of a serialized model dict (``model`` of an envelope), by key path."""
    descriptor = model.get("descriptor", {})
    return {
        "model/descriptor/type_one_side": descriptor.get("type_one_side", True),
        "model/descriptor/env_protection": descriptor.get("env_protection", 0.0),
        "model/descriptor/spin": descriptor.get("spin"),
        "model/type_embedding": model.get("type_embedding"),
    }


def backends_for_model(model: dict) -> list[str]:
    """Backends (in :data:`BACKENDS` order) that can evaluate the serialized ``model``."""
    options = model_options(model)
    return [b for b in BACKENDS if all(is_supported(o, v, b) for o, v in options.items())]


def _brief(value: Any) -> str:
    """``repr`` of a value, a serialized section shown by its ``@class`` only (no arrays)."""
    if isinstance(value, dict):
        return f"{{'@class': {value['@class']!r}, ...}}" if "@class" in value else "{...}"
    return repr(value)


def support_table() -> list[dict[str, str]]:
    """Rows ``{option, value, <backend>: "yes"/"refused"}`` for documentation."""
    return [
        {"option": r.option, "value": r.value_text,
         **{b: ("yes" if b in r.supported_by else "refused") for b in BACKENDS}}
        for r in RESTRICTIONS
    ]
