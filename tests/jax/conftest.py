"""JAX backend tests: skipped as a whole when jax or optax is not installed.

XLA:CPU spends seconds per compilation in its MLIR fusion emitters and LLVM's
optimiser; the tiny systems here need neither fast machine code nor those emitters, so
the tests ask for ``--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false``
(flags already present in ``XLA_FLAGS`` are kept), which cuts compile time about
fivefold. It takes effect only if no JAX computation ran earlier in the process, and it
changes compile time, not results (no fast-math; the tolerances are unchanged).
"""

import importlib.util
import os

_AVAILABLE = all(importlib.util.find_spec(m) for m in ("jax", "optax"))
collect_ignore_glob = [] if _AVAILABLE else ["test_*.py"]

_FAST_COMPILE = {"xla_backend_optimization_level": "0", "xla_cpu_use_fusion_emitters": "false"}
if _AVAILABLE:
    _flags = os.environ.get("XLA_FLAGS", "")
    _extra = [f"--{k}={v}" for k, v in _FAST_COMPILE.items() if k not in _flags]
    os.environ["XLA_FLAGS"] = " ".join([_flags, *_extra]).strip()
