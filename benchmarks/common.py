"""Shared pieces of the benchmark scripts: water frames, timing, and the writer of the
documentation's benchmark page (DeePMD-kit's side runs through :mod:`deepmd_runner`).

``--write-docs`` (every script that offers it): :func:`write_docs_section` stores the
script's Markdown section, with a description of the machine and the exact command, as
``docs/benchmarks/sections/<script>.md`` (plots beside ``results.md``) and reassembles
``docs/benchmarks/results.md`` from every section present (:func:`assemble_results`);
``docs/_ext/dpdocs.py`` includes that file in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WATER = REPO.parent / "shared" / "data" / "water"
DEEPMD_PYTHON = os.environ.get("DEEPMD_PYTHON", str(REPO.parent / "dpvenv" / "bin" / "python"))
#: a DeePMD-kit virtualenv with the torch its PyTorch custom operators were built for (2.11.0), which
#: its compressed PyTorch models need (docs/benchmarks.md)
DEEPMD_PT_OPS_PYTHON = os.environ.get("DEEPMD_PT_OPS_PYTHON", str(REPO.parent / "dpvenv-ptops" / "bin" / "python"))
#: where ``--write-docs`` puts results.md, its plots and sections/<script>.md
DOCS_BENCHMARKS = REPO / "docs" / "benchmarks"
#: order of the sections in results.md; sections of other scripts follow alphabetically
SECTION_ORDER = ("scaling", "infer", "compress", "compress_wide", "jax_compile", "train_speed", "train_speed_epochs",
                 "train_water")
#: packages whose versions the machine description lists, here and in DeePMD-kit's interpreter
VERSIONED = ("numpy", "torch", "jax", "tensorflow")



def water_frames(nframes: int, system: str = "data_0") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``nframes`` water frames: coord (nf, 192, 3) Å, cells (nf, 9) Å, atom types (192,)."""
    if not WATER.is_dir():
        sys.exit(f"benchmark needs the water data at {WATER} (../shared/data/water beside the checkout)")
    base = WATER / system
    coord = np.load(base / "set.000" / "coord.npy")[:nframes]
    box = np.load(base / "set.000" / "box.npy")[:nframes]
    atype = np.loadtxt(base / "type.raw", dtype=np.int64)
    return coord.reshape(len(coord), -1, 3).astype(np.float64), box.astype(np.float64), atype


def eager_pot(path: Path):
    """A ``DeepPot`` on a ``.pth`` file that runs the eager torch modules, never the file's TorchScript program
    (which ``DeepPot`` runs by default for systems of up to ``backends.pt.io.PROGRAM_MAX_ATOMS`` atoms)."""
    from dpmodel.infer import DeepPot
    from dpmodel.registry import backends

    pot = DeepPot(path)
    pot.evaluator = backends()["pt"].module("io").Evaluator(path, program=False)
    return pot


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


def supercell(coord: np.ndarray, box: np.ndarray, atype: np.ndarray,
              reps: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame replicated ``reps`` times along its lattice vectors.

    ``coord`` (natoms, 3) and ``box`` (9,) (rows are the lattice vectors) give coord
    (natoms * prod(reps), 3), the scaled box (9,) and the tiled types; image
    ``(i, j, k)`` is the frame shifted by ``i a + j b + k c``.
    """
    cell = np.asarray(box, dtype=np.float64).reshape(3, 3)
    shifts = np.array([(i, j, k) for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])],
                      dtype=np.float64) @ cell
    coord = np.asarray(coord, dtype=np.float64).reshape(-1, 3)
    big = (coord[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    return big, (cell * np.asarray(reps, dtype=np.float64)[:, None]).ravel(), np.tile(atype, len(shifts))


def tuned_malloc_env() -> dict[str, str]:
    """Environment that gives another process the glibc thresholds of :mod:`dpmodel.allocator`."""
    from dpmodel import allocator

    return {"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={allocator.MMAP_THRESHOLD}:"
                              f"glibc.malloc.trim_threshold={allocator.TRIM_THRESHOLD}"}


def table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows`` (``|`` inside a cell is escaped)."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return head + body


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value).replace("|", "\\|")


# --------------------------------------------------------------------------- docs/benchmarks
def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this script, as typed from the root of the checkout."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve() if argv else Path("?")
    try:
        script = script.relative_to(REPO)
    except ValueError:
        pass
    return shlex.join(["python", script.as_posix(), *argv[1:]])


#: versions of the import names in ``VERSIONED`` by their distributions (tensorflow may be
#: installed as tensorflow-cpu); the same code runs in DeePMD-kit's interpreter
_VERSIONS_CODE = """
import importlib.metadata as m
dists = m.packages_distributions()
for name in NAMES:
    for dist in [*dists.get(name, []), name]:
        try:
            print(name, m.version(dist))
            break
        except m.PackageNotFoundError:
            pass
"""


def _versions_in(python: str, names: tuple[str, ...]) -> list[str]:
    """``["numpy 2.1.0", ...]`` of the packages of ``names`` installed for ``python``."""
    code = f"NAMES = {names!r}\n" + _VERSIONS_CODE
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _gpus() -> str:
    if shutil.which("nvidia-smi") is None:
        return "none found"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi failed)"
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return ", ".join(names) or "none found"


def _git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + (" with local changes" if dirty else "")) if commit else "unknown"


def deepmd_versions() -> str | None:
    """``"deepmd-kit 3.2.0 (numpy ..., torch ...)"`` of DeePMD-kit's interpreter, or ``None``."""
    if not Path(DEEPMD_PYTHON).exists():
        return None
    found = _versions_in(DEEPMD_PYTHON, ("deepmd", *VERSIONED))
    if not found or not found[0].startswith("deepmd "):
        return None
    return found[0].replace("deepmd ", "deepmd-kit ", 1) + (f" ({', '.join(found[1:])})" if found[1:] else "")


def machine_description(command: str | None = None, deepmd: bool = False) -> str:
    """Markdown list: command, date, CPU, cores, GPUs, versions here and (``deepmd``) DeePMD-kit's."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    lines = [
        f"- command: `{command or command_line()}`",
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {_cpu_model()}; {os.cpu_count()} logical cores, {usable} usable by this process",
        f"- GPU: {_gpus()}",
        f"- this project: git {_git_commit()}; Python {platform.python_version()}, "
        f"{', '.join(_versions_in(sys.executable, VERSIONED)) or 'no ' + '/'.join(VERSIONED)}",
    ]
    if deepmd:
        lines.append(f"- DeePMD-kit: {deepmd_versions() or f'not found at {DEEPMD_PYTHON}'}")
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would keep the file from others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_docs_section(name: str, title: str, body: str, *, files: Mapping[str, Path] | None = None,
                       folder: Path = DOCS_BENCHMARKS, command: str | None = None, deepmd: bool = False,
                       machine: str | None = None, script: str | None = None) -> Path:
    """Store one script's section under ``folder`` and reassemble ``folder/results.md``.

    ``name`` names the section file; ``script`` the script that wrote it (default ``name``).

    ``body`` is Markdown (tables, ``![plot](name.png)``) whose relative paths are relative
    to ``folder``, the folder of results.md; ``files`` maps such names to files produced
    by the script, copied into ``folder``. The section gets the heading ``## title`` and
    the :func:`machine_description` (``machine`` replaces it, e.g. in tests). Returns the
    path of results.md.
    """
    folder = Path(folder)
    for target, source in (files or {}).items():
        atomic_write(folder / target, Path(source).read_bytes())
    machine = machine if machine is not None else machine_description(command, deepmd)
    text = (f"## {title}\n\n% section written by benchmarks/{script or name}.py --write-docs\n\n"
            f"{body.strip()}\n\nMeasured on:\n\n{machine.strip()}\n")
    atomic_write(folder / "sections" / f"{name}.md", text)
    return assemble_results(folder)


def assemble_results(folder: Path = DOCS_BENCHMARKS) -> Path:
    """Rewrite ``folder/results.md`` from every ``folder/sections/*.md`` (order: :data:`SECTION_ORDER`)."""
    folder = Path(folder)
    rank = {name: i for i, name in enumerate(SECTION_ORDER)}
    sections = sorted((folder / "sections").glob("*.md"), key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    parts = ["% Assembled by benchmarks/common.py from docs/benchmarks/sections/*.md; rerun the scripts with\n"
             "% --write-docs instead of editing this file. Relative paths are relative to this folder.\n"]
    parts += [section.read_text().strip() + "\n" for section in sections]
    results = folder / "results.md"
    atomic_write(results, "\n".join(parts))
    return results
