"""Shared pieces of the benchmark scripts: water frames, timing, the DeePMD-kit runner.

DeePMD-kit is never imported here: its timings come from a subprocess running the
interpreter of a separate virtualenv (``--deepmd-python`` or ``$DEEPMD_PYTHON``), so both
sides are measured in the same run on the same machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WATER = REPO.parent / "shared" / "data" / "water"
DEEPMD_PYTHON = os.environ.get("DEEPMD_PYTHON", str(REPO.parent / "dpvenv" / "bin" / "python"))

CXX_OP_STUB = """
import sys, types
stub = types.ModuleType("deepmd.pt.cxx_op")
stub.ENABLE_CUSTOMIZED_OP = False
stub.load_library = lambda name: False
stub.load_mpi_library = lambda: None
sys.modules["deepmd.pt.cxx_op"] = stub
"""


def water_frames(nframes: int, system: str = "data_0") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``nframes`` water frames: coord (nf, 192, 3) Å, cells (nf, 9) Å, atom types (192,)."""
    if not WATER.is_dir():
        sys.exit(f"benchmark needs the water data at {WATER} (../shared/data/water beside the checkout)")
    base = WATER / system
    coord = np.load(base / "set.000" / "coord.npy")[:nframes]
    box = np.load(base / "set.000" / "box.npy")[:nframes]
    atype = np.loadtxt(base / "type.raw", dtype=np.int64)
    return coord.reshape(len(coord), -1, 3).astype(np.float64), box.astype(np.float64), atype


def median_time(fn: Callable[[], object], repeat: int = 7, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_deepmd(snippet: str, **values) -> dict | None:
    """Run ``snippet`` under DeePMD-kit's interpreter; it must print one JSON line last.

    ``values`` are passed as JSON in the variable ``ARGS``. Returns ``None`` (with a note
    on stderr) when that interpreter is unavailable or fails.
    """
    if not Path(DEEPMD_PYTHON).exists():
        print(f"[deepmd-kit skipped: no interpreter at {DEEPMD_PYTHON}; set DEEPMD_PYTHON]", file=sys.stderr)
        return None
    code = CXX_OP_STUB + f"ARGS = {json.dumps(values)!r}\nimport json\nARGS = json.loads(ARGS)\n" + textwrap.dedent(snippet)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([DEEPMD_PYTHON, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"[deepmd-kit run failed]\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows``."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return head + body


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
