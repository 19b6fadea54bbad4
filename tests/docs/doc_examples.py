"""Find and run the code examples of the documentation pages (``docs/**/*.md``).

Rules, also written in ``docs/dev/documentation.md``:

- A fenced block whose language is ``python`` runs with Python; ``bash``, ``sh`` or
  ``shell`` runs with ``bash -euo pipefail``. Other languages (``console``, ``text``,
  ``json``, ...) are shown, not run.
- A MyST comment line ``% notest: <reason>`` directly above a block (blank lines
  allowed in between) shows it without running it; the reason is required.
- The blocks of one page run in order, as one session: Python blocks share one
  namespace, and every block starts in the directory the previous one ended in.
- A page starts in an empty temporary directory that holds a copy of the repository's
  ``examples/``, as if at the root of a checkout; ``dp`` is the one installed next to
  the running interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PYTHON = ("python", "py", "python3")
SHELL = ("bash", "sh", "shell")
SKIP_DIRS = ("_build", "_generated")

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>.*)$")
_NOTEST = re.compile(r"^%\s*notest\s*:\s*(?P<reason>\S.*)$")


@dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    notest: str | None  # reason, when marked ``% notest: reason``

    @property
    def runnable(self) -> bool:
        return self.notest is None and self.language in PYTHON + SHELL

    @property
    def where(self) -> str:
        try:
            name = self.page.relative_to(REPO)
        except ValueError:
            name = self.page
        return f"{name}:{self.line}"


def _language(info: str) -> str:
    """Language of a fence info string: ``python`` or ``{code-block} python``."""
    words = info.split()
    if not words:
        return ""
    if words[0].startswith("{"):
        return words[1].lower() if words[0] in ("{code-block}", "{code}", "{sourcecode}") and len(words) > 1 else ""
    return words[0].lower()


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened with ``fence`` (same character, at least as long)."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def blocks(page: Path) -> list[Block]:
    """Every fenced code block of ``page``, including those nested in directives (``{note}``...)."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    directives: list[str] = []  # fences of the open non-code directives
    notest: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _FENCE.match(line)
        marker = _NOTEST.match(line.strip())
        if marker:
            notest = marker.group("reason")
        elif match:
            fence, info = match.group("fence"), match.group("info").strip()
            words = info.split()
            if not info and directives and _closes(line, directives[-1]):
                directives.pop()
            elif words and words[0].startswith("{") and words[0] not in ("{code-block}", "{code}", "{sourcecode}"):
                directives.append(fence)
            else:
                start, body = index, []
                index += 1
                if words and words[0].startswith("{"):  # code-block directive: skip its :options:
                    while index < len(lines) and lines[index].startswith(":"):
                        index += 1
                while index < len(lines) and not _closes(lines[index], fence):
                    body.append(lines[index])
                    index += 1
                code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
                found.append(Block(page, start + 1, _language(info), code, notest))
                notest = None
        elif line.strip() and not line.strip().startswith("%"):
            notest = None
        index += 1
    return found


def pages(docs: Path = DOCS) -> list[Path]:
    """Markdown pages of the documentation (generated and build folders excluded)."""
    return sorted(p for p in docs.rglob("*.md") if not any(part in SKIP_DIRS for part in p.relative_to(docs).parts))


class ExampleError(AssertionError):
    """A documentation example failed; the message names page, line and output."""


def prepare_workdir(workdir: Path) -> Path:
    """An empty directory holding a copy of ``examples/``, like the root of a checkout."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = REPO / "examples"
    if source.is_dir():
        shutil.copytree(source, workdir / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return workdir


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    return env


def run_page(page_blocks: list[Block], workdir: Path, timeout: float = 1800) -> int:
    """Run the runnable blocks in order inside ``workdir``; return how many ran.

    Raises
    ------
    ExampleError
        For the first block that fails, with its location, code and output.
    """
    namespace: dict = {"__name__": "__doc_example__"}
    cwd = workdir.resolve()
    state = workdir / ".doc_example_cwd"
    ran = 0
    old_cwd = os.getcwd()
    try:
        for block in page_blocks:
            if not block.runnable:
                continue
            ran += 1
            if block.language in PYTHON:
                os.chdir(cwd)
                try:
                    exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102
                except Exception as err:
                    raise ExampleError(f"example at {block.where} failed: {type(err).__name__}: {err}\n"
                                       f"--- code ---\n{block.code}") from err
                cwd = Path(os.getcwd()).resolve()
            else:
                script = f"cd {_quote(cwd)}\n{block.code}\npwd > {_quote(state.resolve())}\n"
                proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                                      env=_environment(), timeout=timeout)
                if proc.returncode != 0:
                    raise ExampleError(f"example at {block.where} exited with {proc.returncode}\n--- code ---\n"
                                       f"{block.code}--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n"
                                       f"{proc.stderr[-4000:]}")
                cwd = Path(state.read_text().strip())
    finally:
        os.chdir(old_cwd)
    return ran


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"
