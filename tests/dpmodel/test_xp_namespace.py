"""dpmodel.xp.array_namespace: the namespace by the arrays' types, remembered, and registration."""

import array_api_compat
import array_api_strict
import numpy as np
import pytest

from dpmodel import xp


def test_remembered_namespace_is_array_api_compats():
    a, s = np.ones(3), array_api_strict.ones(3)
    for arrays in [(a,), (a, a), (a, None, 1.0), (s,), (s, s, None)]:
        first = xp.array_namespace(*arrays)
        assert first is array_api_compat.array_namespace(*[x for x in arrays if x is not None and not isinstance(x, float)])
        assert xp.array_namespace(*arrays) is first


def test_mixed_namespaces_still_raise_every_time():
    for _ in range(2):
        with pytest.raises(TypeError):
            xp.array_namespace(np.ones(3), array_api_strict.ones(3))


def test_registering_a_namespace_forgets_remembered_ones(monkeypatch):
    class Marker:
        pass

    monkeypatch.setattr(xp, "_EXTRA_NAMESPACES", list(xp._EXTRA_NAMESPACES))
    monkeypatch.setattr(xp, "_BY_TYPES", dict(xp._BY_TYPES))
    assert xp.array_namespace(np.ones(2)) is array_api_compat.array_namespace(np.ones(2))
    xp.register_namespace(lambda obj: isinstance(obj, np.ndarray), Marker)
    assert xp.array_namespace(np.ones(2)) is Marker
