"""PyTorch backend tests: skipped as a whole when torch is not installed.

The systems are tiny (tens of atoms), where intra-op threads cost more than they save
(and oversubscribe a shared CI machine), so these tests run torch single-threaded, and
TorchScript programs without the profiling executor's optimisation passes (seconds of
warm-up per program). ``test_io.py`` runs a ``.pth`` in a fresh process with the defaults.
"""

import importlib.util

import pytest

collect_ignore_glob = [] if importlib.util.find_spec("torch") else ["test_*.py"]


@pytest.fixture(autouse=True, scope="package")
def _single_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with torch.jit.optimized_execution(False):
        yield
    torch.set_num_threads(before)
