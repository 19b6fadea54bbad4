"""Sphinx configuration of the dpmodel-se-r documentation.

Build (warnings are errors): ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
Reference pages are generated before each build by ``docs/_ext/dpdocs.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # document the checkout, not another installed copy

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ banner, when autodoc imports it

import dpmodel  # noqa: E402

project = "dpmodel-se-r"
author = "dpmodel-se-r developers"
copyright = "dpmodel-se-r developers"
release = version = dpmodel.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "dpdocs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_generated/*.md",  # included into pages, not pages themselves
    "_generated/*.rst",
    "benchmarks/*",  # results written by benchmarks/, included by benchmarks.md
    "README.md",
]

# MyST: $...$ / $$...$$ maths, ::: fences, definition lists, heading anchors
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# API reference: numpydoc docstrings; frameworks that are not installed are mocked so
# the reference builds with only the `docs` extra, and imports for real where present.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
_OPTIONAL = ["torch", "jax", "jaxlib", "flax", "optax", "tensorflow", "ase", "matplotlib", "orbax"]
autodoc_mock_imports = [name for name in _OPTIONAL if importlib.util.find_spec(name) is None]
nitpicky = False
smartquotes = False  # keep "--option" and quotes as typed
# backends re-export same-named classes (EnergyModel in pt, jax, tf): an unqualified
# type name in a signature matches several; that ambiguity is not an error in the docs
suppress_warnings = ["ref.python"]

# generated references (docs/_ext/dpdocs.py)
dpdocs_cli_parser = "dpmodel.cli:build_parser"
dpdocs_api_packages = ["dpmodel", "backends"]

html_theme = "alabaster"
html_title = f"dpmodel-se-r {release}"
html_static_path: list[str] = []
