"""The glibc malloc thresholds that keep large temporaries on the heap."""

import os
import platform
import subprocess
import sys

import pytest

from dpmodel import allocator

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _tune_in_fresh_process(setting: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DP_MALLOC_TUNING"}
    if setting is not None:
        env["DP_MALLOC_TUNING"] = setting
    code = ("import ctypes, numpy as np\n"
            "from dpmodel import allocator\n"
            "class Info(ctypes.Structure):\n"
            "    _fields_ = [(name, ctypes.c_size_t) for name in\n"
            "                ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
            "libc = ctypes.CDLL('libc.so.6'); libc.mallinfo2.restype = Info\n"
            "tuned = allocator.tune(); again = allocator.tune()\n"
            "before = libc.mallinfo2().hblkhd\n"
            "block = np.ones(1 << 19)  # 4 MiB\n"
            "mapped = libc.mallinfo2().hblkhd - before >= block.nbytes\n"
            "print(tuned, again, 'mmap' if mapped else 'heap')")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds exist in glibc only")
def test_tune_sets_the_thresholds_once_per_process():
    """A 4 MiB array comes from the heap once tuned, from its own mmap otherwise (glibc's default)."""
    assert _tune_in_fresh_process(None) == "True True heap"
    assert _tune_in_fresh_process("0") == "False False mmap"
    assert allocator.tune() is True
