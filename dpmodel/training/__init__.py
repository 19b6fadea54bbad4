"""Backend-neutral training: protocol, loss, statistics, pre-flight checks and the loop.

- ``protocol``: what a backend supplies (``BackendTrainer``) and how it is found.
- ``loss``: prefactor schedule, the energy loss and its metrics (SPEC 8.3).
- ``adam``: the optimizer formula every backend follows.
- ``neighbor_stat``, ``preflight``: data checks before training.
- ``init``: the initial model dict (statistics, ``sel: auto``, seeds), built once.
- ``checkpoint``, ``lcurve``, ``progress``: files and display.
- ``setup``: everything before the first step; ``loop``: the :class:`Trainer`.
"""

from dpmodel.training.loop import Trainer, TrainingInterrupted
from dpmodel.training.setup import TrainOptions, prepare

__all__ = ["TrainOptions", "Trainer", "TrainingInterrupted", "prepare", "train"]


def train(input_path, backend: str = "pt", options: TrainOptions | None = None) -> Trainer:
    """Prepare and run a training (the Python form of ``dp train``); returns the finished :class:`Trainer`."""
    options = options or TrainOptions()
    trainer = Trainer(prepare(input_path, backend, options), options)
    trainer.run()
    return trainer
