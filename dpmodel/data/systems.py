"""Many ``deepmd/npy`` systems: discovery, batch sizes, sampling, batch order.

``DataSystems.next_batch`` picks a system with probability ``probs`` and returns
its next batch.  Each system walks through a permutation of its frames and draws a
fresh permutation when fewer than ``batch_size`` frames remain (the tail of an
epoch is skipped, as in DeePMD-kit).  One ``numpy.random.default_rng(seed)`` drives
both choices, so the batch order is fixed by the seed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dpmodel.data.batch_size import batch_size_for, filter_limit
from dpmodel.data.system import DeepmdSystem
from dpmodel.errors import ConfigError, DataError

__all__ = ["DataSystems", "expand_systems", "system_probabilities"]

PathSpec = str | os.PathLike | Sequence[str | os.PathLike]


def expand_systems(spec: PathSpec, root: str | os.PathLike | None = None) -> list[Path]:
    """Turn ``training_data.systems`` into a list of system directories.

    Parameters
    ----------
    spec : str, path or list of them
        A directory holding ``type.raw`` is one system; any other directory is
        searched recursively and each directory below it holding ``type.raw``
        is a system (sorted by path).
    root : str or path, optional
        Base for relative entries (e.g. the directory of ``input.json``).

    Returns
    -------
    list of Path
        System directories, in the order given.

    Raises
    ------
    DataError
        If an entry does not exist or holds no system.
    """
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    systems: list[Path] = []
    for item in items:
        path = Path(item)
        if root is not None and not path.is_absolute():
            path = Path(root) / path
        if not path.is_dir():
            raise DataError(f"data system directory {path} does not exist")
        if (path / "type.raw").is_file():
            systems.append(path)
            continue
        found = sorted(p.parent for p in path.rglob("type.raw"))
        if not found:
            raise DataError(f"{path} holds no type.raw and no system below it")
        systems.extend(found)
    return systems


def system_probabilities(
    nbatches: Sequence[int],
    sys_probs: Sequence[float] | None = None,
    auto_prob: str = "prob_sys_size",
) -> np.ndarray:
    """Return the probability of drawing each system.

    Parameters
    ----------
    nbatches : sequence of int, length nsys
        Batches per epoch of each system.
    sys_probs : sequence of float, optional
        Explicit weights (normalised here); overrides ``auto_prob``.
    auto_prob : str
        ``"prob_uniform"``, ``"prob_sys_size"`` (∝ ``nbatches``) or
        ``"prob_sys_size;i0:i1:w;..."``: block ``[i0, i1)`` of systems gets total
        weight ``w``, shared within the block ∝ ``nbatches``.

    Returns
    -------
    ndarray, shape (nsys,), float64
        Probabilities summing to 1.
    """
    nsys = len(nbatches)
    sizes = np.asarray(nbatches, dtype=np.float64)
    if sys_probs is not None:
        weights = np.asarray(sys_probs, dtype=np.float64)
        if weights.shape != (nsys,) or (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError(
                f"sys_probs = {list(sys_probs)} must hold {nsys} non-negative "
                "weights (one per system) with a positive sum"
            )
    elif auto_prob == "prob_uniform":
        weights = np.ones(nsys)
    elif auto_prob == "prob_sys_size":
        weights = sizes
    elif auto_prob.startswith("prob_sys_size;"):
        weights = _block_weights(sizes, auto_prob)
    else:
        raise ConfigError(
            f"auto_prob = {auto_prob!r} is not valid; expected 'prob_uniform', "
            "'prob_sys_size' or 'prob_sys_size;i0:i1:w;...'"
        )
    return weights / weights.sum()


def _block_weights(sizes: np.ndarray, auto_prob: str) -> np.ndarray:
    """Weights for ``"prob_sys_size;i0:i1:w;..."``."""
    weights = np.zeros_like(sizes)
    for block in auto_prob.split(";")[1:]:
        try:
            start, stop, weight = block.split(":")
            part = slice(int(start), int(stop))
            weights[part] = float(weight) * sizes[part] / sizes[part].sum()
        except (ValueError, ZeroDivisionError) as err:
            raise ConfigError(
                f"auto_prob block {block!r} in {auto_prob!r} is not 'i0:i1:w' "
                f"with 0 <= i0 < i1 <= {sizes.size}"
            ) from err
    return weights


class DataSystems:
    """Seeded batches drawn from several ``deepmd/npy`` systems.

    Parameters
    ----------
    paths : str, path or list of them
        Systems or directories to search (see ``expand_systems``).
    type_map : list of str or None
        The model's element names; every system is remapped onto it.
    batch_size : int, str or list of int
        A rule of ``dpmodel.data.batch_size`` or one int per system.
    seed : int or None
        Seed of ``numpy.random.default_rng`` driving system choice and shuffles.
    sys_probs : list of float, optional
        Explicit system weights.
    auto_prob : str
        Rule used when ``sys_probs`` is None (see ``system_probabilities``).
    root : str or path, optional
        Base for relative ``paths``.

    Attributes
    ----------
    systems : list of DeepmdSystem
    batch_sizes : list of int
        Frames per batch of each system.
    nbatches : list of int
        ``max(nframes // batch_size, 1)`` per system.
    probs : ndarray, shape (nsys,), float64
    """

    def __init__(
        self,
        paths: PathSpec,
        type_map: Sequence[str] | None,
        batch_size: int | str | Sequence[int] = "auto",
        seed: int | None = None,
        sys_probs: Sequence[float] | None = None,
        auto_prob: str = "prob_sys_size",
        root: str | os.PathLike | None = None,
    ) -> None:
        systems = [DeepmdSystem(p, type_map) for p in expand_systems(paths, root)]
        if isinstance(batch_size, (list, tuple)):
            if len(batch_size) != len(systems):
                raise ConfigError(
                    f"batch_size list has {len(batch_size)} entries for "
                    f"{len(systems)} systems; give one per system or a rule"
                )
            sizes = [batch_size_for(bs, 1) for bs in batch_size]
        else:
            limit = filter_limit(batch_size)
            if limit is not None:
                systems = [s for s in systems if s.natoms <= limit]
                if not systems:
                    raise DataError(
                        f"batch_size {batch_size!r} filtered out every system"
                    )
            sizes = [batch_size_for(batch_size, s.natoms) for s in systems]
        self.systems = systems
        self.type_map = None if type_map is None else list(type_map)
        self.batch_sizes = sizes
        self.nbatches = [max(s.nframes // bs, 1) for s, bs in zip(systems, sizes)]
        self.probs = system_probabilities(self.nbatches, sys_probs, auto_prob)
        self._rng = np.random.default_rng(seed)
        self._order: list[np.ndarray | None] = [None] * len(systems)
        self._cursor = [0] * len(systems)

    def __len__(self) -> int:
        """Return the number of systems."""
        return len(self.systems)

    def batch_from(self, isys: int) -> dict[str, Any]:
        """Return the next batch of system ``isys`` (see ``DeepmdSystem.frames``)."""
        system, size = self.systems[isys], self.batch_sizes[isys]
        order, cursor = self._order[isys], self._cursor[isys]
        if order is None or cursor + size > system.nframes:
            order, cursor = self._rng.permutation(system.nframes), 0
            self._order[isys] = order
        self._cursor[isys] = cursor + size
        return system.frames(order[cursor : cursor + size])

    def state(self) -> dict[str, Any]:
        """The batch-order state, for checkpoints: restoring it replays the same batches.

        Returns
        -------
        dict
            ``rng`` (the JSON-able bit-generator state), ``cursor`` (list of int) and
            ``order`` (per system, the current frame permutation or None).
        """
        order = [None if o is None else o.copy() for o in self._order]
        return {"rng": self._rng.bit_generator.state, "cursor": list(self._cursor), "order": order}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        if len(state["cursor"]) != len(self.systems):
            raise DataError(
                f"saved batch state covers {len(state['cursor'])} systems, but "
                f"{len(self.systems)} are configured; the data systems changed"
            )
        self._rng.bit_generator.state = state["rng"]
        self._cursor = [int(c) for c in state["cursor"]]
        self._order = [None if o is None else np.asarray(o, dtype=np.int64) for o in state["order"]]

    def next_batch(self) -> tuple[int, dict[str, Any]]:
        """Draw a system by ``probs`` and return ``(system_index, batch)``."""
        isys = int(self._rng.choice(len(self.systems), p=self.probs))
        return isys, self.batch_from(isys)
