"""Sphinx extension that writes the generated reference pages before every build.

Everything that code already knows is generated, never copied by hand:

- ``support.md``: the backend support table, from :func:`dpmodel.capabilities.support_table`
  (the table whose rows raise the refusals) and the backend registry (suffixes, extras);
- ``extras.md``: the install extras and pins, from ``pyproject.toml``;
- ``native_files.md``: each registered backend's file formats, from its ``io`` docstring;
- ``input.rst``: the ``input.json`` reference, from :func:`dpmodel.config.schema_docs`
  (the dargs schema that validates input files);
- ``cli.md``: the command-line reference, walked from the ``argparse`` parser of
  :mod:`dpmodel.cli`;
- ``api/*.rst``: one autodoc page per public module of ``dpmodel`` and ``backends``;
- ``benchmarks.md``: a copy of ``docs/benchmarks/results.md`` written by ``benchmarks/``
  (``--write-docs``; relative image paths rewritten for ``docs/benchmarks.md``), or a
  clearly labelled placeholder when no results were produced yet.

Files go to ``docs/_generated/`` (not version controlled) and are rewritten only when
their content changes. A generator that cannot import what it documents raises
:class:`sphinx.errors.ExtensionError`, so the build fails instead of publishing a
page that silently lost a section.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

GENERATED = "_generated"
CLI_PARSER = "dpmodel.cli:build_parser"
API_PACKAGES = ("dpmodel", "backends")
BENCHMARK_RESULTS = "benchmarks/results.md"

__all__ = ["cli_parser", "generate", "input_paths", "subcommands", "setup"]


# --------------------------------------------------------------------------- helpers
def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it already holds exactly that (keeps mtimes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|{}$~#])")


def md_escape(text: str) -> str:
    """Backslash-escape the characters that Markdown (MyST) would interpret."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; cells are used as given (escape them first if needed)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- support table
def support_markdown() -> str:
    """Backend option support and file suffixes, from capabilities and the registry."""
    from dpmodel import capabilities
    from dpmodel.capabilities import BACKEND_NAMES, BACKENDS, support_table
    from dpmodel.registry import backends

    marks = {"yes": "yes", "refused": "refused"}
    header = ["option", "value", *[BACKEND_NAMES[b] for b in BACKENDS]]
    rows = [[f"`{row['option']}`", md_escape(row["value"]), *[marks[row[b]] for b in BACKENDS]]
            for row in support_table()]
    text = ["Options not listed here are supported by every backend.\n\n", md_table(header, rows)]
    defaults = getattr(capabilities, "BACKEND_DEFAULTS", {})
    if defaults:
        rows = [[f"`{option}`", *[f"`{json.dumps(capabilities.backend_default(option, b))}`" for b in BACKENDS]]
                for option in defaults]
        text.append("\nOptions whose default, when the input leaves them out, depends on the backend:\n\n")
        text.append(md_table(["option", *[BACKEND_NAMES[b] for b in BACKENDS]], rows))
    infos = backends()
    rows = []
    for name, info in infos.items():
        extra = "(core)" if name == "dpmodel" else f"`pip install '.[{name}]'`"
        rows.append([info.title or name, f"`{name}`", ", ".join(f"`{a}`" for a in info.aliases) or "-",
                     ", ".join(f"`{s}`" for s in info.suffixes), "yes" if info.train else "no", extra])
    text.append("\nModel files and installation, from the backend registry "
                "(`dpmodel.registry.backends()`); the first suffix is the default:\n\n")
    text.append(md_table(["backend", "name", "aliases", "file suffixes", "trains", "install"], rows))
    return "".join(text)


def native_files_markdown() -> str:
    """One section per framework backend holding the docstring of its file module."""
    from dpmodel.registry import backends

    text = []
    for name, info in backends().items():
        if name == "dpmodel":
            continue
        suffixes = ", ".join(f"`{s}`" for s in info.suffixes)
        text.append(f"### {info.title or name} ({suffixes})\n\n"
                    f"```{{eval-rst}}\n.. automodule:: {info.io}\n   :no-members:\n   :no-index:\n```\n\n")
    return "".join(text)


_EXTRA_USE = {
    "pt": "the PyTorch backend (`--pt`)",
    "tf": "the TensorFlow backend (`--tf`)",
    "jax": "the JAX backend (`--jax`)",
    "ase": "the ASE calculator `dpmodel.calculator.DP`",
    "all": "every backend and ASE",
    "test": "the test suite",
    "docs": "building this documentation",
}


def project_dependencies(pyproject: Path) -> tuple[list[str], dict[str, list[str]]]:
    """``(core requirements, {extra: requirements})`` of the project being documented."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata instead
        from importlib.metadata import metadata

        core, extras = [], {}
        for line in metadata("dpmodel-se-r").get_all("Requires-Dist") or []:
            requirement, _, marker = line.partition(";")
            match = re.search(r"extra\s*==\s*['\"]([^'\"]+)", marker)
            (extras.setdefault(match.group(1), []) if match else core).append(requirement.strip())
        return core, extras
    project = tomllib.loads(pyproject.read_text())["project"]
    return list(project.get("dependencies", [])), dict(project.get("optional-dependencies", {}))


def extras_markdown(pyproject: Path) -> str:
    """The extras table of the installation page, from ``pyproject.toml``."""
    core, extras = project_dependencies(pyproject)
    rows = [["(none)", ", ".join(f"`{r}`" for r in core), "`dpmodel`: model files, evaluation, input checks"]]
    rows += [[f"`{name}`", ", ".join(f"`{r}`" for r in reqs), _EXTRA_USE.get(name, "")]
             for name, reqs in extras.items()]
    return md_table(["extra", "installs", "for"], rows)


# --------------------------------------------------------------------------- input.json
def input_rst() -> str:
    """The dargs documentation of every ``input.json`` key."""
    from dpmodel.config import schema_docs

    return schema_docs() + "\n"


def input_paths() -> Iterator[str]:
    """Argument path of every key of the schema, as dargs prints it.

    Keys inside a variant are written ``section[choice]/key`` (for example
    ``model/descriptor[se_e2_r]/rcut``); the variant flag itself is ``section/type``.
    """
    from dpmodel.config import section_args

    def walk(arg: Any, path: str) -> Iterator[str]:
        yield path
        for sub in arg.sub_fields.values():
            yield from walk(sub, f"{path}/{sub.name}")
        for variant in arg.sub_variants.values():
            yield f"{path}/{variant.flag_name}"
            for choice in variant.choice_dict.values():
                yield from walk_choice(choice, f"{path}[{choice.name}]")

    def walk_choice(choice: Any, path: str) -> Iterator[str]:
        for sub in choice.sub_fields.values():
            yield from walk(sub, f"{path}/{sub.name}")
        for variant in choice.sub_variants.values():
            yield f"{path}/{variant.flag_name}"

    for section in section_args():
        yield from walk(section, section.name)


# --------------------------------------------------------------------------- CLI
def cli_parser(spec: str = CLI_PARSER) -> argparse.ArgumentParser:
    """Build the ``dp`` parser from ``"module:function"``; fail loudly if impossible."""
    module_name, _, function = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RuntimeError(f"CLI reference: cannot import {module_name!r} ({err}); "
                           "the documentation needs the command-line parser") from err
    builder = getattr(module, function, None)
    if builder is None:
        raise RuntimeError(f"CLI reference: {module_name!r} has no {function!r}; "
                           "update dpdocs_cli_parser in docs/conf.py to the parser builder")
    parser = builder()
    if not isinstance(parser, argparse.ArgumentParser):
        raise RuntimeError(f"CLI reference: {spec} returned {type(parser).__name__}, not an ArgumentParser")
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """``(name, parser, one-line help)`` of every direct subcommand, aliases skipped."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:
                    continue
                seen.add(id(sub))
                found.append((name, sub, helps.get(name, "")))
    return found


def subcommands(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """Every subcommand, nested ones included, as ``("train", parser, help)`` or ``("a b", ...)``."""
    for name, sub, help_text in _subparsers(parser):
        full = f"{prefix} {name}".strip()
        yield full, sub, help_text
        yield from subcommands(sub, full)


def _documented(action: argparse.Action) -> bool:
    """Whether an argument belongs in the reference (not help, subcommands or hidden ones)."""
    return not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) \
        and action.help != argparse.SUPPRESS


def _global_key(action: argparse.Action) -> tuple:
    return tuple(action.option_strings), action.help


def _option_rows(parser: argparse.ArgumentParser, skip: set[tuple] = frozenset()) -> list[str]:
    """MyST ``option`` directives for every documented argument not in ``skip``."""
    out = []
    for action in parser._actions:
        if not _documented(action) or (action.option_strings and _global_key(action) in skip):
            continue
        if action.option_strings:
            metavar = ""
            if action.nargs != 0:
                default_metavar = action.dest.upper()
                metavar = action.metavar or default_metavar
                metavar = " " + (" ".join(metavar) if isinstance(metavar, tuple) else str(metavar))
            signature = ", ".join(f"{opt}{metavar}" for opt in action.option_strings)
        else:
            metavar = action.metavar or action.dest
            signature = " ".join(metavar) if isinstance(metavar, tuple) else str(metavar)
        help_text = (action.help or "").replace("%(default)s", str(action.default)).replace("%%", "%")
        details = []
        if action.choices is not None:
            details.append("choices: " + ", ".join(f"`{c}`" for c in action.choices))
        if action.required and action.option_strings:
            details.append("required")
        elif action.default is not None and action.default is not argparse.SUPPRESS \
                and action.default is not False and action.nargs != 0 and "(default" not in help_text:
            details.append(f"default: `{action.default}`")
        body = md_escape(help_text) if help_text else ""
        if details:
            body = (body + " " if body else "") + "(" + "; ".join(details) + ")"
        out.append(f"```{{option}} {signature}\n{body}\n```\n")
    return out


def _usage(parser: argparse.ArgumentParser) -> str:
    return parser.format_usage().replace("usage: ", "", 1).strip()


def cli_markdown(parser: argparse.ArgumentParser) -> str:
    """The reference of ``dp`` and every subcommand, in MyST Markdown.

    Options a subcommand repeats from the global ones (same flags and help) are listed
    once, under the global options, and named in one line under each subcommand.
    """
    prog = parser.prog
    text = ["(cli-global)=\n## Global options\n\n", f"```text\n{_usage(parser)}\n```\n\n"]
    if parser.description:
        text.append(md_escape(parser.description) + "\n\n")
    text.append(f"```{{program}} {prog}\n```\n\n")
    text += _option_rows(parser)
    globals_ = {_global_key(a) for a in parser._actions if _documented(a) and a.option_strings}
    commands = list(subcommands(parser))
    if commands:
        text.append("\n| command | purpose |\n|---|---|\n")
        text += [f"| [`{prog} {name}`](#cli-{name.replace(' ', '-')}) | {md_escape(help_text)} |\n"
                 for name, _, help_text in commands]
    for name, sub, help_text in commands:
        anchor = name.replace(" ", "-")
        text.append(f"\n(cli-{anchor})=\n## `{prog} {name}`\n\n")
        description = sub.description or help_text
        if description:
            text.append(md_escape(description) + "\n\n")
        text.append(f"```text\n{_usage(sub)}\n```\n\n")
        text.append(f"```{{program}} {prog} {name}\n```\n\n")
        text += _option_rows(sub, globals_)
        repeated = [a for a in sub._actions if _documented(a) and a.option_strings and _global_key(a) in globals_]
        if repeated:
            flags = ", ".join(f"`{a.option_strings[-1]}`" if len(a.option_strings) == 1
                              else "/".join(f"`{o}`" for o in a.option_strings) for a in repeated)
            text.append(f"\nAlso accepts the [global options](#cli-global) after the command: {flags}.\n")
        if sub.epilog:
            text.append("\n" + md_escape(sub.epilog) + "\n")
    return "".join(text)


# --------------------------------------------------------------------------- API pages
def public_modules(packages: tuple[str, ...] = API_PACKAGES) -> list[str]:
    """Every module of ``packages`` whose dotted name has no ``_``-prefixed part."""
    names = []
    for package_name in packages:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(set(names))


def api_rst(module: str) -> str:
    """One autodoc page."""
    title = f"``{module}``"
    return (f"{title}\n{'=' * len(title)}\n\n.. automodule:: {module}\n   :members:\n"
            "   :show-inheritance:\n")


# --------------------------------------------------------------------------- benchmarks
_IMAGE_LINK = re.compile(r"(!\[[^\]]*\]\()(?!https?://|/)([^)\s]+)")
_IMAGE_DIRECTIVE = re.compile(r"^(\s*(?:`{3,}|:{3,})\{(?:image|figure)\}\s+)(?!https?://|/)(\S+)", re.M)


def benchmarks_markdown(srcdir: Path) -> str:
    """The results written by ``benchmarks/``, or a labelled placeholder saying how to produce them.

    The results file is copied with its relative image paths (relative to
    ``docs/benchmarks/``, where ``benchmarks/common.py`` writes it and the plot) rewritten
    for ``docs/benchmarks.md``, the page that includes this file: MyST resolves the paths
    of an included file against the including page.
    """
    results = srcdir / BENCHMARK_RESULTS
    if results.exists():
        folder = Path(BENCHMARK_RESULTS).parent.as_posix()
        text = _IMAGE_LINK.sub(lambda m: f"{m.group(1)}{folder}/{m.group(2)}", results.read_text())
        return _IMAGE_DIRECTIVE.sub(lambda m: f"{m.group(1)}{folder}/{m.group(2)}", text)
    return (
        "```{admonition} Placeholder: no benchmark results yet\n:class: warning\n\n"
        f"`docs/{BENCHMARK_RESULTS}` does not exist, so this page shows no numbers. "
        "Run the scripts in `benchmarks/` with `--write-docs` (see below) on the machine to be "
        f"reported; they write `docs/{BENCHMARK_RESULTS}` (tables) and the plot next to it, and "
        "the next documentation build includes them here.\n```\n"
    )


# --------------------------------------------------------------------------- Sphinx glue
def generate(srcdir: Path, cli_spec: str = CLI_PARSER, api_packages: tuple[str, ...] = API_PACKAGES) -> None:
    """Write every generated file under ``srcdir/_generated``."""
    out = srcdir / GENERATED
    write_if_changed(out / "support.md", support_markdown())
    write_if_changed(out / "native_files.md", native_files_markdown())
    write_if_changed(out / "extras.md", extras_markdown(srcdir.parent / "pyproject.toml"))
    write_if_changed(out / "input.rst", input_rst())
    write_if_changed(out / "cli.md", cli_markdown(cli_parser(cli_spec)))
    write_if_changed(out / "benchmarks.md", benchmarks_markdown(srcdir))
    modules = public_modules(api_packages)
    api = out / "api"
    for stale in api.glob("*.rst") if api.exists() else []:
        if stale.stem not in modules:
            stale.unlink()
    for module in modules:
        write_if_changed(api / f"{module}.rst", api_rst(module))


def _on_builder_inited(app: Any) -> None:
    from sphinx.errors import ExtensionError

    try:
        generate(Path(app.srcdir), app.config.dpdocs_cli_parser, tuple(app.config.dpdocs_api_packages))
    except Exception as err:  # any failure must stop the build, with the reason
        raise ExtensionError(f"dpdocs: generating reference pages failed: {err}") from err


def setup(app: Any) -> dict[str, Any]:
    """Register the config values and the generation hook."""
    app.add_config_value("dpdocs_cli_parser", CLI_PARSER, "env")
    app.add_config_value("dpdocs_api_packages", list(API_PACKAGES), "env")
    app.connect("builder-inited", _on_builder_inited)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
