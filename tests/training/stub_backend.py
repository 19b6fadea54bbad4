"""A NumPy ``BackendTrainer`` for testing the loop without a framework.

Its "model" is one weight vector; each step moves it by a deterministic function of
the batch and the learning rate, and the metrics are functions of the weights, so
any change in batch order, learning rate or state shows up in the history.
"""

from __future__ import annotations

import threading

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


class Staged:
    """A batch staged by :class:`StagingStubTrainer`, with the name of the thread that staged it."""

    def __init__(self, batch: dict) -> None:
        self.batch, self.thread = batch, threading.current_thread().name


class StagingStubTrainer(StubTrainer):
    """The stub with the optional ``stage``; ``step`` takes plain or staged batches."""

    def __init__(self, model_dict: dict, config: dict, on_step=None) -> None:
        super().__init__(model_dict, config, on_step)
        self.stage_threads: list[str] = []

    def stage(self, batch: dict) -> Staged:
        staged = Staged(batch)
        self.stage_threads.append(staged.thread)
        return staged

    def step(self, batch: dict | Staged, lr: float, prefactors: dict) -> dict:
        return super().step(batch.batch if isinstance(batch, Staged) else batch, lr, prefactors)


def stub_prepared(config: dict, train, valid, trainer: StubTrainer, model: dict) -> Prepared:
    """A :class:`Prepared` run of the stub (backend recorded as dpmodel)."""
    return Prepared(config, DPMODEL, trainer, train, valid)
