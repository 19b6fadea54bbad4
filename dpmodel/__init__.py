"""Backend-neutral reference implementation of DeePMD's ``se_e2_r`` energy model.

Everything here is written once against the Python array API, so the same code runs
on NumPy, under ``array-api-strict`` and, wrapped by a backend, on framework arrays.
``dpmodel`` never imports a deep-learning framework.
"""

__version__ = "0.1.0"
