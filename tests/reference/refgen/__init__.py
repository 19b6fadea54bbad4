"""The pieces of ``tests/reference/generate.py``: one module per family of reference files.

Run with DeePMD-kit 3.2.0's Python (see ``generate.py``); nothing here is imported by the tests."""
