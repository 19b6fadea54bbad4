"""Framework backends of the se_e2_r model: ``backends.pt``, ``backends.jax``, ``backends.tf``.

Each is importable without its framework (its ``__init__`` holds only the ``INFO``
record); its modules import the framework and fail with a clear error if it is absent.
"""
