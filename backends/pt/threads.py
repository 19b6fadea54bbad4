"""Thread pools of PyTorch from DeePMD's environment variables.

``DP_INTRA_OP_PARALLELISM_THREADS`` (else ``OMP_NUM_THREADS``) sets the intra-op pool,
``DP_INTER_OP_PARALLELISM_THREADS`` the inter-op pool; unset or 0 keeps PyTorch's default.
"""

from __future__ import annotations

import torch

from dpmodel.host_threads import env_threads

_DONE = False


def _env_int(*names: str) -> int:
    """The first of ``names`` that is set (:func:`dpmodel.host_threads.env_threads`), else 0."""
    return next((count for count in map(env_threads, names) if count is not None), 0)


def configure() -> tuple[int, int]:
    """Apply the environment once per process; returns the (intra, inter) thread counts in use."""
    global _DONE
    if not _DONE:
        _DONE = True
        intra = _env_int("DP_INTRA_OP_PARALLELISM_THREADS", "OMP_NUM_THREADS")
        inter = _env_int("DP_INTER_OP_PARALLELISM_THREADS")
        if intra > 0:
            torch.set_num_threads(intra)
        if inter > 0:
            try:
                torch.set_num_interop_threads(inter)
            except RuntimeError:  # the inter-op pool was already started by earlier torch work
                pass
    return torch.get_num_threads(), torch.get_num_interop_threads()
