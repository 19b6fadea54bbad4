"""Backend-neutral training: protocol, loss, statistics, pre-flight checks and the loop.

- ``protocol``: what a backend supplies (``BackendTrainer``) and how it is found.
- ``loss``: prefactor schedule, the energy loss and its metrics (SPEC 8.3).
- ``adam``: the optimizer formula every backend follows.
"""
