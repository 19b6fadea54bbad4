"""Write small deepmd/npy systems with known values for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_system(
    path: Path,
    atype: list[int],
    nframes: int | list[int] = 4,
    type_map: list[str] | None = None,
    labels: tuple[str, ...] = ("energy", "force"),
    nopbc: bool = False,
    start: int = 0,
) -> Path:
    """Write a system whose frame ``k`` has every coordinate equal to ``k``.

    Energy of frame k is ``10 k``, force ``-k``, virial ``0.5 k``; arrays are
    stored as float32 to check the float64 cast.
    """
    path.mkdir(parents=True)
    (path / "type.raw").write_text("\n".join(map(str, atype)) + "\n")
    if type_map is not None:
        (path / "type_map.raw").write_text("\n".join(type_map) + "\n")
    if nopbc:
        (path / "nopbc").touch()
    nat = len(atype)
    sizes = [nframes] if isinstance(nframes, int) else nframes
    first = start
    for iset, size in enumerate(sizes):
        frame = np.arange(first, first + size, dtype=np.float32)[:, None]
        first += size
        set_dir = path / f"set.{iset:03d}"
        set_dir.mkdir()
        np.save(set_dir / "coord.npy", np.repeat(frame, nat * 3, axis=1))
        if not nopbc:
            np.save(set_dir / "box.npy", np.tile(np.eye(3).ravel() * 20.0, (size, 1)))
        values = {
            "energy": 10 * frame[:, 0],
            "force": np.repeat(-frame, nat * 3, axis=1),
            "virial": np.repeat(0.5 * frame, 9, axis=1),
        }
        for name in labels:
            np.save(set_dir / f"{name}.npy", values[name].astype(np.float32))
    return path
