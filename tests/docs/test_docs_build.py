"""The documentation builds with warnings as errors, and its generated references are complete.

One ``sphinx-build -W --keep-going -b html`` run (module fixture) serves every test. The
CLI and input.json references are checked against the parser and the dargs schema
themselves, so a subcommand, option or key added to the code without reaching the
documentation fails here.
"""

from __future__ import annotations

import fcntl
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from doc_examples import DOCS, REPO

pytest.importorskip("sphinx", reason="building the documentation needs sphinx: pip install -e '.[docs]'")
pytest.importorskip("myst_parser", reason="building the documentation needs myst-parser: pip install -e '.[docs]'")

sys.path.insert(0, str(DOCS / "_ext"))
import dpdocs  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML site: built once per test session, or the one CI just built the same way.

    ``DPMODEL_DOCS_HTML`` names the output folder of a ``sphinx-build -W --keep-going -b
    html docs <folder>`` run that succeeded (``.ci/run`` builds once and checks it here).
    Otherwise the first pytest-xdist worker to get here builds into a folder shared by
    all workers, under a lock, and records the outcome for the others.
    """
    prebuilt = os.environ.get("DPMODEL_DOCS_HTML")
    if prebuilt:
        assert (Path(prebuilt) / "index.html").is_file(), f"DPMODEL_DOCS_HTML={prebuilt} holds no built site"
        return Path(prebuilt)
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, the same for every worker
    out, log = shared / "docs_html", shared / "docs_html.log"
    with open(shared / "docs_html.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not log.exists():
            cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
                   "-d", str(shared / "docs_doctrees"), str(DOCS), str(out)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1800)
            log.write_text(f"{proc.returncode}\n{proc.stderr}")
    returncode, _, stderr = log.read_text().partition("\n")
    assert returncode == "0", f"sphinx-build -W failed ({returncode}):\n{stderr[-20000:]}"
    return out


def _text(page: Path) -> str:
    """Visible text of an HTML page, tags removed and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def test_docs_build_with_warnings_as_errors(built: Path) -> None:
    for page in ("index", "theory", "install", "quickstart", "backends", "formats", "guide/training",
                 "guide/consistency", "benchmarks", "reference/input", "reference/cli", "reference/api",
                 "dev/adding-a-backend", "dev/documentation"):
        assert (built / f"{page}.html").is_file(), f"{page}.html was not built"


def test_every_cli_subcommand_and_option_is_documented(built: Path) -> None:
    page = (built / "reference" / "cli.html").read_text()
    text = _text(built / "reference" / "cli.html")
    parser = dpdocs.cli_parser()
    commands = list(dpdocs.subcommands(parser))
    assert {"train", "freeze", "test", "convert-backend"} <= {name for name, _, _ in commands}
    for name, sub, _ in commands:
        anchor = "cli-" + name.replace(" ", "-")
        assert f'id="{anchor}"' in page, f"dp {name}: no section {anchor!r} in the CLI reference"
        assert f"dp {name}" in text
        for action in filter(dpdocs._documented, sub._actions):
            for option in action.option_strings or [action.metavar or action.dest]:
                assert option in text, f"dp {name}: option {option} missing from the CLI reference"
    for action in filter(dpdocs._documented, parser._actions):
        for option in action.option_strings:
            assert option in text, f"dp: global option {option} missing from the CLI reference"


def test_every_input_key_is_documented(built: Path) -> None:
    text = _text(built / "reference" / "input.html")
    paths = list(dpdocs.input_paths())
    assert "model/descriptor[se_e2_r]/rcut" in paths and "training/numb_steps" in paths
    missing = [path for path in paths if f"argument path: {path}" not in text]
    assert not missing, f"input keys missing from the input.json reference: {missing}"


def test_input_aliases_are_documented(built: Path) -> None:
    text = _text(built / "reference" / "input.html")
    from dpmodel.config import section_args

    def aliases(arg):
        yield from arg.alias
        for sub in arg.sub_fields.values():
            yield from aliases(sub)
        for variant in arg.sub_variants.values():
            for choice in variant.choice_dict.values():
                yield from aliases(choice)

    found = [alias for section in section_args() for alias in aliases(section)]
    assert "se_r" in found
    assert [a for a in found if a not in text] == []


def test_support_table_is_the_capabilities_table(built: Path) -> None:
    from dpmodel.capabilities import BACKEND_NAMES, BACKENDS, support_table

    text = _text(built / "backends.html")
    for row in support_table():
        cells = " ".join([row["option"], row["value"], *[row[b] for b in BACKENDS]])
        assert re.search(r"\s+".join(map(re.escape, cells.split())), text), f"row {row} missing"
    for backend in BACKENDS:
        assert BACKEND_NAMES[backend] in text


def test_install_page_lists_every_extra(built: Path) -> None:
    text = _text(built / "install.html")
    _, extras = dpdocs.project_dependencies(REPO / "pyproject.toml")
    assert {"pt", "tf", "jax", "ase", "all", "test", "docs"} <= set(extras)
    for name, requirements in extras.items():
        assert name in text and all(r in text for r in requirements), f"extra {name!r} missing from install page"


def test_api_reference_covers_every_public_module(built: Path) -> None:
    for module in dpdocs.public_modules():
        page = built / "_generated" / "api" / f"{module}.html"
        assert page.is_file(), f"no API page for {module}"
    assert "DescrptSeR" in _text(built / "_generated" / "api" / "dpmodel.descriptor.html")


def test_benchmark_page_shows_results_or_labelled_placeholder(built: Path) -> None:
    text = _text(built / "benchmarks.html")
    if (DOCS / dpdocs.BENCHMARK_RESULTS).exists():
        assert "Placeholder" not in text
    else:
        assert "Placeholder: no benchmark results yet" in text


def test_missing_cli_fails_generation() -> None:
    with pytest.raises(RuntimeError, match="cannot import 'dpmodel.no_such_cli'"):
        dpdocs.cli_parser("dpmodel.no_such_cli:build_parser")
    with pytest.raises(RuntimeError, match="has no 'no_such_builder'"):
        dpdocs.cli_parser("dpmodel.cli:no_such_builder")
