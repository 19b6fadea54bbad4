"""``deepmd/npy`` training data (SPEC 8.5, 8.6), NumPy only.

- ``system``: one system directory (files, shapes, type remapping, frame batches).
- ``batch_size``: the ``batch_size`` rules (int, ``auto[:N]``, ``max:N``, ``filter:N``).
- ``systems``: finding systems, sampling probabilities, seeded batch order.
"""

from dpmodel.data.batch_size import batch_size_for, parse_rule
from dpmodel.data.system import LABELS, DeepmdSystem
from dpmodel.data.systems import DataSystems, expand_systems, system_probabilities

__all__ = [
    "LABELS",
    "DataSystems",
    "DeepmdSystem",
    "batch_size_for",
    "expand_systems",
    "parse_rule",
    "system_probabilities",
]
