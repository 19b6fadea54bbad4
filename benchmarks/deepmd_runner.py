"""DeePMD-kit's side of the benchmarks, run in its own virtualenv.

DeePMD-kit is never imported here: its timings come from a subprocess running the
interpreter of a separate virtualenv (``$DEEPMD_PYTHON``, default ``../dpvenv/bin/python``),
so both sides are measured in the same run on the same machine. :func:`run_deepmd` runs one
snippet, :class:`DeepmdServer` keeps ``DeepPot`` loaded and times it on request, and
:func:`deepmd_eval` times each backend once through a server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Mapping

import numpy as np

from common import DEEPMD_PYTHON

#: Imported before ``deepmd``: its PyTorch custom-op library is built for another torch, and
#: se_e2_r needs no custom op
CXX_OP_STUB = """
import sys, types
stub = types.ModuleType("deepmd.pt.cxx_op")
stub.ENABLE_CUSTOMIZED_OP = False
stub.load_library = lambda name: False
stub.load_mpi_library = lambda: None
sys.modules["deepmd.pt.cxx_op"] = stub
"""


def run_deepmd(snippet: str, env: Mapping[str, str] | None = None, python: str = DEEPMD_PYTHON,
               custom_ops: bool = False, **values) -> dict | None:
    """Run ``snippet`` under DeePMD-kit's interpreter; it must print one JSON line last.

    ``values`` are passed as JSON in the variable ``ARGS``; ``env`` adds environment
    variables; ``python`` is the interpreter, which loads DeePMD-kit's PyTorch custom
    operators with ``custom_ops`` (else :data:`CXX_OP_STUB` replaces them). Returns ``None``
    (with a note on stderr) when that interpreter is unavailable or fails.
    """
    if not Path(python).exists():
        print(f"[deepmd-kit skipped: no interpreter at {python}; see docs/benchmarks.md]", file=sys.stderr)
        return None
    arguments = f"ARGS = {json.dumps(values)!r}\nimport json\nARGS = json.loads(ARGS)\n"
    code = ("" if custom_ops else CXX_OP_STUB) + arguments + textwrap.dedent(snippet)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"[deepmd-kit run failed]\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def deepmd_eval(model: Path, tmp: Path, systems: Mapping[str, tuple], repeat: int, warmup: int = 2,
                backends: tuple[str, ...] = ("PyTorch", "JAX", "TensorFlow"),
                env: Mapping[str, str] | None = None) -> dict:
    """Median seconds of DeePMD-kit's ``DeepPot.eval`` (energy, forces, virial) per backend and system.

    ``systems`` maps a key to ``(coord (nf, natoms, 3), box (nf, 9), atype (natoms,))``;
    ``backends`` names DeePMD-kit's backends to time, ``env`` adds environment variables.
    Returns ``{"PyTorch" | "JAX" | "TensorFlow": {key: {"seconds", "energy"}} or
    {"error": message}}``, or ``{}`` when DeePMD-kit's interpreter is unavailable. Runs on
    the CPU (the server hides GPUs).
    """
    server = DeepmdServer(model, tmp, systems, warmup=warmup, backends=backends, env=env, tag="once")
    try:
        return {name: (server.time(name, repeat) or {"error": "the DeePMD-kit server stopped"}) if status == "ok"
                else {"error": status} for name, status in server.status.items()}
    finally:
        server.close()


#: A DeePMD-kit evaluation server: loads ``ARGS["model"]`` in each backend of
#: ``ARGS["backends"]`` and warms it up on every system, prints one JSON line
#: ``{backend: "ok" | error message}``, then for each stdin line ``{"backend", "repeat"}``
#: times that backend on every system and prints ``{key: {"seconds", "energy"}}``.
DEEPMD_SERVER_SNIPPET = """
import os, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from deepmd.entrypoints.convert_backend import convert_backend
from deepmd.infer import DeepPot
systems = [(s["key"], np.load(s["file"])) for s in ARGS["systems"]]
pots, status = {}, {}
for name, suffix in (("PyTorch", ".pth"), ("JAX", ".hlo"), ("TensorFlow", ".pb")):
    if name not in ARGS["backends"]:
        continue
    path = os.path.join(ARGS["tmp"], "server-" + ARGS["tag"] + suffix)
    try:
        convert_backend(INPUT=ARGS["model"], OUTPUT=path)
        pots[name] = DeepPot(path)
        for key, data in systems:
            for _ in range(ARGS["warmup"]):
                pots[name].eval(data["coord"], data["box"], data["atype"])
        status[name] = "ok"
    except Exception as err:  # a backend DeePMD-kit cannot build here
        status[name] = f"{type(err).__name__}: {err}"[:200]
print(json.dumps(status), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    dp, result = pots[request["backend"]], {}
    for key, data in systems:
        c, b, t = data["coord"], data["box"], data["atype"]
        times = []
        for _ in range(request["repeat"]):
            s = time.perf_counter(); e, f, v = dp.eval(c, b, t); times.append(time.perf_counter() - s)
        result[key] = {"seconds": statistics.median(times), "energy": e.ravel().tolist()}
    print(json.dumps(result), flush=True)
"""


class DeepmdServer:
    """DeePMD-kit's ``DeepPot`` in a long-lived subprocess of its own virtualenv, timed on request.

    Timing DeePMD-kit right after each of ours, block by block, pairs the two within seconds,
    so the drifts of a shared machine's speed (minutes) cancel in their ratio.

    Attributes
    ----------
    status : ``{backend: "ok" or error message}`` for each backend asked for; empty when
        DeePMD-kit's interpreter is unavailable or failed to start
    """

    def __init__(self, model: Path, tmp: Path, systems: Mapping[str, tuple], warmup: int = 2,
                 backends: tuple[str, ...] = ("PyTorch", "JAX", "TensorFlow"),
                 env: Mapping[str, str] | None = None, tag: str = "plain") -> None:
        self.status: dict[str, str] = {}
        self.proc = None
        if not Path(DEEPMD_PYTHON).exists():
            print(f"[deepmd-kit skipped: no interpreter at {DEEPMD_PYTHON}; set DEEPMD_PYTHON]", file=sys.stderr)
            return
        listed = []
        for i, (key, (coord, box, atype)) in enumerate(systems.items()):
            path = Path(tmp) / f"deepmd-server-{tag}-{i}.npz"
            np.savez(path, coord=coord, box=box, atype=atype)
            listed.append({"key": key, "file": str(path)})
        values = {"model": str(model), "tmp": str(tmp), "systems": listed, "warmup": warmup,
                  "backends": list(backends), "tag": tag}
        code = (CXX_OP_STUB + f"ARGS = {json.dumps(values)!r}\nimport json\nARGS = json.loads(ARGS)\n"
                + textwrap.dedent(DEEPMD_SERVER_SNIPPET))
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
        self.proc = subprocess.Popen([DEEPMD_PYTHON, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        self.status = self._reply() or {}

    def _reply(self) -> dict | None:
        """The next JSON line of the server (other lines, e.g. library messages, are skipped)."""
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        print("[deepmd-kit server stopped]", file=sys.stderr)
        return None

    def time(self, backend: str, repeat: int) -> dict | None:
        """``{key: {"seconds": median of repeat calls, "energy"}}`` of one loaded backend."""
        if self.status.get(backend) != "ok":
            return None
        self.proc.stdin.write(json.dumps({"backend": backend, "repeat": repeat}) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()
