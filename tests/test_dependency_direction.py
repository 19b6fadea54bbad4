"""``import dpmodel`` (and its whole reference stack) pulls in no deep-learning framework."""

import subprocess
import sys

MODULES = ["dpmodel", "dpmodel.model", "dpmodel.infer", "dpmodel.registry", "dpmodel.io", "dpmodel.stat",
           "dpmodel.training", "dpmodel.cli",
           "backends", "backends.pt", "backends.jax", "backends.tf"]


def test_dpmodel_imports_no_framework():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in MODULES)
        + "from dpmodel.registry import backends; backends()\n"
        + "from dpmodel.cli.parser import build_parser; build_parser()\n"
        + "print(','.join(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
