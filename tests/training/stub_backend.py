"""A NumPy ``BackendTrainer`` for testing the loop without a framework.

Its "model" is one weight vector; each step moves it by a deterministic function of
the batch and the learning rate, and the metrics are functions of the weights, so
any change in batch order, learning rate or state shows up in the history.
"""

from __future__ import annotations

import numpy as np

from dpmodel.registry import DPMODEL
from dpmodel.training.setup import Prepared


class StubTrainer:
    """Protocol-conforming trainer of a 3-vector; ``on_step(n)`` is called after update ``n``."""

    def __init__(self, model_dict: dict, config: dict, on_step=None) -> None:
        self._model = model_dict
        self.w = np.zeros(3)
        self.m = np.zeros(3)
        self.count = 0
        self.closed = 0
        self.on_step = on_step

    def _metrics(self, batch: dict) -> dict:
        residual = float(np.mean(batch["force"]) - self.w.sum())
        return {"rmse": abs(residual) + 1.0, "rmse_e": abs(self.w[0]), "rmse_f": abs(self.w[1]),
                "rmse_v": abs(self.w[2])}

    def step(self, batch: dict, lr: float, prefactors: dict) -> dict:
        metrics = self._metrics(batch)
        grad = np.array([batch["coord"].mean(), batch["energy"].mean(), prefactors["f"]])
        self.m = 0.9 * self.m + 0.1 * grad
        self.w = self.w - lr * self.m
        self.count += 1
        if self.on_step is not None:
            self.on_step(self.count)
        return metrics

    def evaluate(self, batch: dict, prefactors: dict) -> dict:
        return self._metrics(batch)

    def model_dict(self) -> dict:
        return self._model

    def state(self) -> dict:
        return {"w": self.w.copy(), "m": self.m.copy(), "count": np.asarray(self.count)}

    def load_state(self, state: dict) -> None:
        self.w, self.m, self.count = np.array(state["w"]), np.array(state["m"]), int(state["count"])

    def close(self) -> None:
        self.closed += 1


def stub_prepared(config: dict, train, valid, trainer: StubTrainer, model: dict) -> Prepared:
    """A :class:`Prepared` run of the stub (backend recorded as dpmodel)."""
    return Prepared(config, DPMODEL, trainer, train, valid)
